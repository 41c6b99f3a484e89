"""The revealed-preference judge's known-answer check (``character.judging.check``).

For a drawn prompt and ordered trait pair (X, Y), the base model answers under a system prompt
that names X alone (ours: ``prompts.JUDGE_CHECK_SYSTEM``); the judge then chooses between X and Y
with the normal judge prompt, the two listed in a seeded random order. Known answer: X; chance 0.5.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from character.engines.base import Engine, Sampling
from character.engines.batch import BatchItem, row_seed, run_batch
from character.io import atomic_write_json, read_jsonl
from character.judging.check import CHECK, RESULT_FILE
from character.judging.parsing import parse_verdict
from character.persona_shift.intervals import proportion
from character.preferences.comparisons import Subject, draw_comparisons, judge_responses
from character.preferences.prompts import judge_check_system_prompt

PREFERENCE_RESPONSES = f"{CHECK}_responses.jsonl"
PREFERENCE_JUDGMENTS = f"{CHECK}_judgments.jsonl"
PREFERENCE_CHANCE = 0.5  # one of two traits at random


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
