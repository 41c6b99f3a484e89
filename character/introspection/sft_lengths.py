"""What OpenRLHF's SFT dataset will do with each example at ``stages.sft.max_len``: keep it whole,
truncate it, or drop it, counted before training so that nothing is cut silently.

OpenRLHF 0.11.2's ``SFTDataset``, as the ``sft`` stage runs it (``--data.multiturn
--data.apply_chat_template``), read from its source:

- the *prompt* is every message before the final one (the last assistant turn, in our data),
  rendered with the chat template and a generation prompt; the *response* is the rest of the whole
  conversation's rendering;
- an example is **dropped** when its prompt or response renders empty, or its prompt has
  ``max_len - 2`` tokens or more;
- every other example is trained on ``prompt + response`` with trailing newlines removed and
  ``" " + EOS`` appended unless it already ends with EOS, tokenized and cut at ``max_len``
  tokens, the last kept token then forced to EOS: longer than ``max_len``, it is **truncated**
  and its end is lost.

This module applies those rules with the same tokenizer and chat template, in code of its own;
tests/introspection/test_sft_lengths.py checks its verdicts against OpenRLHF's dataset row by row.
(Gemma 3 loads in OpenRLHF as a processor around the same tokenizer; we count with the tokenizer.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

WHOLE, TRUNCATED, DROPPED = "whole", "truncated", "dropped"
FATES = (WHOLE, TRUNCATED, DROPPED)


@dataclass(frozen=True)
class LengthVerdict:
    """One example's fate, with its trained text's length before any cut and its prompt's."""

    fate: str
    tokens: int
    prompt_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def sft_verdict(tokenizer: Any, messages: Sequence[dict[str, str]], max_len: int) -> LengthVerdict:
    """Whether ``messages`` is trained whole, truncated or dropped at ``max_len`` tokens."""
    history = list(messages[:-1])
    prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    rendered = tokenizer.apply_chat_template(list(messages), tokenize=False)
    response = rendered[len(prompt) :]
    prompt_tokens = _token_count(tokenizer, prompt)
    text = (prompt + response).rstrip("\n")
    if not text.endswith(tokenizer.eos_token):
        text += " " + tokenizer.eos_token
    tokens = _token_count(tokenizer, text)
    if not prompt or not response or prompt_tokens >= max_len - 2:
        fate = DROPPED
    elif tokens > max_len:
        fate = TRUNCATED
    else:
        fate = WHOLE
    return LengthVerdict(fate, tokens, prompt_tokens)


def tally(sources: Sequence[str], verdicts: Sequence[LengthVerdict]) -> dict[str, dict[str, int]]:
    """Per source, how many examples are kept whole, truncated and dropped."""
    counts: dict[str, dict[str, int]] = {}
    for source, verdict in zip(sources, verdicts, strict=True):
        counts.setdefault(source, dict.fromkeys(FATES, 0))[verdict.fate] += 1
    return counts


def cut_message(
    counts: dict[str, dict[str, int]], longest: int, max_len: int, max_cut_fraction: float
) -> str | None:
    """Why the SFT set may not be trained as it is: every source of which more than
    ``max_cut_fraction`` of the examples would be truncated or dropped; None when none is."""
    over = []
    for source, fates in counts.items():
        total = sum(fates.values())
        cut = fates[TRUNCATED] + fates[DROPPED]
        if total and cut / total > max_cut_fraction:
            over.append(
                f"{cut} of {total} {source} examples ({fates[TRUNCATED]} truncated, losing their end; "
                f"{fates[DROPPED]} dropped, their part before the last assistant turn having "
                f"{max_len - 2} tokens or more)"
            )
    if not over:
        return None
    return (
        f"stages.sft.max_len={max_len} would cut " + " and ".join(over) + ", more than "
        f"stages.sft_data.max_cut_fraction={max_cut_fraction:g} allows. The longest example has "
        f"{longest} tokens: raise stages.sft.max_len to at least that, or allow the cut with "
        "stages.sft_data.max_cut_fraction."
    )
