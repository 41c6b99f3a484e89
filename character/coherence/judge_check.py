"""The coherence judge's known-answer check (``character.judging.check``).

A robustness response against a degraded copy of itself (``degrade``: its words shuffled), judged
in both orders as the stage judges. Known answer: the intact response, in both orders; a judge
answering 1 or 2 at random gets a case right once in four.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from character.engines.batch import row_seed
from character.judging.check import CHECK
from character.persona_shift.intervals import proportion
from character.robustness.adversarial import DEFAULT_SPLIT

CHANCE_PER_VERDICT = 0.5  # one of two responses at random
# A coherence case is right when both orders pick the intact response: 1/2 x 1/2 at random.
COHERENCE_CHANCE = 0.25


def degrade(text: str, seed: int) -> str:
    """A clearly incoherent copy of ``text``: its words in a seeded random order, single-spaced.

    Word salad with the same words and the same length, so a judge can only prefer the intact
    response by reading it for sense, not by its length or vocabulary. It differs from ``text``
    whenever ``text`` has two different words (``degradable``): a shuffle that happens to give the
    words back in order is replaced by a rotation, which never does.
    """
    words = text.split()
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    if shuffled == words:
        shuffled = words[1:] + words[:1]
    return " ".join(shuffled)


def degradable(text: str) -> bool:
    """Whether shuffling the words of ``text`` changes it (two different words at least)."""
    return len(set(text.split())) >= 2


def coherence_check_rows(
    rows: Sequence[dict[str, Any]], n: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded sample of ``n`` default-split responses (``read_responses`` rows) and their
    degraded copies, row for row (same prompt and ``prompt_index``).

    Responses without two different words are left out: no copy of them could be worse.
    """
    candidates = [row for row in rows if row["split"] == DEFAULT_SPLIT and degradable(row["response"])]
    rng = random.Random(row_seed(seed, CHECK))
    chosen = sorted(rng.sample(candidates, min(n, len(candidates))), key=lambda row: row["prompt_index"])
    degraded = [
        {**row, "response": degrade(row["response"], int(row_seed(seed, f"{CHECK}/{row['prompt_index']}")))}
        for row in chosen
    ]
    return chosen, degraded


def coherence_check_result(outcomes: Sequence[str], judge: str, source: str) -> dict[str, Any]:
    """One judge's accuracy from ``combine_orders`` outcomes with the intact response as ``a``.

    Right ("a"): the intact response chosen in both orders. The rest are counted by kind:
    ``wrong`` (the degraded copy chosen in both orders), ``invalid``, ``inconsistent``, ``unparsed``.
    """
    counts = Counter(outcomes)
    n, correct = len(outcomes), counts["a"]
    return {
        "judge": judge,
        "source_method": source,
        "degradation": "words shuffled",
        "cases": n,
        "correct": correct,
        "accuracy": proportion(correct, n).as_dict(),
        "chance": COHERENCE_CHANCE,
        "chance_per_verdict": CHANCE_PER_VERDICT,
        "wrong": counts["b"],
        "invalid": counts["invalid"],
        "inconsistent": counts["inconsistent"],
        "unparsed": counts["unparsed"],
    }


def log_coherence_check(log, result: dict[str, Any]) -> None:
    acc = result["accuracy"]
    log.info(
        "judge check (coherence, %s): the intact response beat its word-shuffled copy in both orders "
        "in %d of %d cases (%.0f%%, 95%% CI %.0f-%.0f%%; chance 25%%; %d invalid, %d inconsistent)",
        result["judge"],
        result["correct"],
        result["cases"],
        100 * acc["rate"],
        100 * acc["low"],
        100 * acc["high"],
        result["invalid"],
        result["inconsistent"],
    )
