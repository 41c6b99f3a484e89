"""Expanding each trait's hand-written questions into a longer list (paper §2.3, App. H).

A generator model is shown the trait and asked for a numbered list of user messages; its answer is
prefilled with the hand-written questions as items 1..k, so it continues the list in the same
style. Lines are parsed as ``N. text``; a line is kept only when it starts with a letter and ends
with "?" or "." (as the reference did), and when no more than ``threshold`` of its words already
appear in one earlier message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

EXPANSION_INSTRUCTION = (
    "Here is one trait of an AI assistant's character, written by the assistant:\n\n"
    '"{trait}"\n\n'
    "Write a numbered list of {count} different messages that a human user might send to an AI "
    "assistant, each giving the assistant a natural opportunity to show this trait in its reply. "
    "The messages must not mention the trait. Vary the topics, lengths and tones: questions, "
    "requests, tasks, complaints and small talk. Write only the list, one message per line."
)

_ITEM = re.compile(r"^\s*(\d+)[.)]\s+(.*?)\s*$")
_WORD = re.compile(r"[a-z0-9']+")


def expansion_request(trait: str, seeds: Sequence[str], count: int) -> tuple[list[dict[str, str]], str]:
    """The generator's conversation and its prefill (the seeds as items 1..k, then "k+1.")."""
    prefill = "".join(f"{i}. {q}\n" for i, q in enumerate(seeds, start=1)) + f"{len(seeds) + 1}."
    return [{"role": "user", "content": EXPANSION_INSTRUCTION.format(trait=trait, count=count)}], prefill


def parse_numbered_list(text: str) -> list[str]:
    """Items of a numbered list that start with a letter and end with "?" or "."."""
    items = []
    for line in text.splitlines():
        match = _ITEM.match(line)
        if not match:
            continue
        item = match.group(2).strip()
        if item and item[0].isalpha() and item[-1] in "?.":
            items.append(item)
    return items


def continuation_items(prefill: str, generated: str) -> list[str]:
    """The items the generator added: parse prefill's open last item plus the continuation."""
    open_item = prefill.rsplit("\n", 1)[-1]  # e.g. "6." waiting for its text
    return parse_numbered_list(open_item + generated)


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def is_near_duplicate(candidate: str, earlier: Iterable[str], threshold: float) -> bool:
    """True when more than ``threshold`` of the candidate's words appear in one earlier message."""
    mine = words(candidate)
    if not mine:
        return True
    return any(len(mine & words(other)) / len(mine) > threshold for other in earlier)


def extend_unique(
    kept: list[str], candidates: Iterable[str], threshold: float, limit: int
) -> tuple[int, int]:
    """Append candidates that are not near-duplicates, up to ``limit`` in total; (added, dropped)."""
    added = dropped = 0
    for candidate in candidates:
        if len(kept) >= limit:
            break
        if is_near_duplicate(candidate, kept, threshold):
            dropped += 1
        else:
            kept.append(candidate)
            added += 1
    return added, dropped
