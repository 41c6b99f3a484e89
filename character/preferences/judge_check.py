"""Known-answer checks of the judges: how good is the judge behind each judge-based number?

A judge constrained to its allowed answers always gives one; a weak judge (a 135M model judging
itself) then gives confident noise that reads like a result. So each judge-based stage builds, from
its own job, cases whose right verdict is known, has them judged with the same prompt, engine and
sampling as its real comparisons, and reports the judge's accuracy on them beside its numbers:

- **revealed preferences** (``eval``): for a drawn prompt and ordered trait pair (X, Y), the base
  model answers under a system prompt that names X alone (ours:
  ``preferences_prompts.JUDGE_CHECK_SYSTEM``); the judge then chooses between X and Y with the
  normal judge prompt, the two listed in a seeded random order. Known answer: X; chance 0.5.
- **coherence**: a robustness response against a degraded copy of itself (``degrade``: its words
  shuffled), judged in both orders as the stage judges. Known answer: the intact response, in both
  orders; a judge answering 1 or 2 at random gets a case right once in four.

Accuracy is the share of all cases judged right (an invalid or order-inconsistent verdict counts as
wrong, so ``n`` is the number of cases), with its 95 % Wilson interval. A judge near chance, or
whose interval reaches chance, cannot be trusted with the stage's numbers.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from character.engines.base import Engine, Sampling
from character.engines.batch import BatchItem, row_seed, run_batch
from character.io import atomic_write_json, read_jsonl
from character.judging.parsing import parse_verdict
from character.persona_shift.intervals import proportion
from character.preferences.comparisons import Subject, draw_comparisons, judge_responses
from character.preferences.prompts import judge_check_system_prompt
from character.robustness.adversarial import DEFAULT_SPLIT

CHECK = "judge_check"
RESULT_FILE = f"{CHECK}.json"
PREFERENCE_RESPONSES = f"{CHECK}_responses.jsonl"
PREFERENCE_JUDGMENTS = f"{CHECK}_judgments.jsonl"
PREFERENCE_CHANCE = 0.5  # one of two traits at random
# A coherence case is right when both orders pick the intact response: 1/2 x 1/2 at random.
COHERENCE_CHANCE = 0.25


# --- revealed preferences ---------------------------------------------------------------------


def preference_check_cases(prompts: Sequence[str], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` seeded cases: a prompt and an ordered trait pair drawn as the evaluation draws them.

    ``target`` (X, the first trait drawn) is the trait the subject is told to express and the known
    answer; ``trait_1``/``trait_2`` are X and Y in the order the judge sees them, X first or second
    by a seeded coin, so a judge that always names the first-listed trait scores chance.
    """
    rng = random.Random(row_seed(seed, f"{CHECK}/order"))
    cases = []
    for draw in draw_comparisons(prompts, n, CHECK, seed):
        target, other = draw["trait_1"], draw["trait_2"]
        listed = (target, other) if rng.random() < 0.5 else (other, target)
        cases.append(
            {
                "id": draw["id"],
                "condition": CHECK,
                "prompt": draw["prompt"],
                "target": target,
                "other": other,
                "trait_1": listed[0],
                "trait_2": listed[1],
            }
        )
    return cases


def preference_check_items(cases: Sequence[dict[str, Any]]) -> list[BatchItem]:
    """The subject's conversations: the one-trait system prompt (X only), then the user prompt."""
    return [
        BatchItem(
            id=case["id"],
            messages=[
                {"role": "system", "content": judge_check_system_prompt(case["target"])},
                {"role": "user", "content": case["prompt"]},
            ],
            meta={key: case[key] for key in ("condition", "target", "other", "trait_1", "trait_2")},
        )
        for case in cases
    ]


def generate_preference_check(
    engine: Engine | Callable[[], Engine],
    subject: Subject,
    prompts: Sequence[str],
    n: int,
    sampling: Sampling,
    seed: int,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """The subject's answers to ``n`` check cases, streamed (resumable) into their own JSONL."""
    path = out_dir / PREFERENCE_RESPONSES
    items = preference_check_items(preference_check_cases(prompts, n, seed))
    run_batch(engine, items, sampling, path, lora=subject.lora, description=f"judge check ({subject.name})")
    return read_jsonl(path)


def preference_check_result(
    rows: Sequence[dict[str, Any]], judge: str = "judge", subject: str | None = None
) -> dict[str, Any]:
    """The judge's accuracy on its judgment rows (``judge_check_judgments.jsonl``), parsed row by row.

    A row is right when its parsed verdict is its ``target``; an invalid verdict counts as wrong
    and is also counted apart. Accuracy per listing position (X listed first or second) shows a
    judge that just names the first-listed trait: right when X is first, wrong when it is second.
    """
    correct = invalid = 0
    by_position: dict[str, list[int]] = {"first": [0, 0], "second": [0, 0]}
    for row in rows:
        verdict = parse_verdict(row["texts"][0], (row["trait_1"], row["trait_2"]))
        right = verdict == row["target"]
        correct += right
        invalid += verdict is None
        position = by_position["first" if row["trait_1"] == row["target"] else "second"]
        position[0] += right
        position[1] += 1
    n = len(rows)
    return {
        "judge": judge,
        "subject": subject,
        "cases": n,
        "correct": correct,
        "accuracy": proportion(correct, n).as_dict(),
        "chance": PREFERENCE_CHANCE,
        "invalid": invalid,
        "invalid_rate": invalid / n if n else float("nan"),
        "accuracy_by_position": {k: proportion(*v).as_dict() for k, v in by_position.items()},
    }


def judge_preference_check(
    judge: Engine | Callable[[], Engine],
    responses: list[dict[str, Any]],
    sampling: Sampling,
    out_dir: Path,
    subject: str,
    log,
) -> dict[str, Any]:
    """Judge the check's answers with the normal judge prompt; write and log ``judge_check.json``."""
    path = out_dir / PREFERENCE_JUDGMENTS
    judge_responses(judge, responses, sampling, path, extra_keys=("target", "other"))
    result = preference_check_result(read_jsonl(path), "judge", subject)
    atomic_write_json(out_dir / RESULT_FILE, result)
    acc = result["accuracy"]
    log.info(
        "judge check (preferences): the judge named the trait %s was told to express in %d of %d "
        "cases (%.0f%%, 95%% CI %.0f-%.0f%%; chance 50%%; %d invalid)",
        subject,
        result["correct"],
        result["cases"],
        100 * acc["rate"],
        100 * acc["low"],
        100 * acc["high"],
        result["invalid"],
    )
    return result


# --- coherence --------------------------------------------------------------------------------


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
        "chance_per_verdict": PREFERENCE_CHANCE,
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
