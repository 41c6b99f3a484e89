"""Revealed preferences (paper §3.1, Appendix I): which traits does an assistant choose to express?

For each subject (a model, optionally with a LoRA adapter) and each condition, every comparison
draws a user prompt and an ordered pair of traits (seeded); the subject answers under the
Appendix I system prompt; the judge names the trait the answer expressed. Each valid verdict is an
outcome (chosen trait beats the other), from which ``ratings`` computes Elo and Bradley-Terry
ratings. Responses and judgments stream through the resumable batch runner.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from character.data.sources import load_prompts
from character.engines.base import Engine, LoraAdapter, Sampling
from character.engines.batch import BatchItem, row_seed, run_batch
from character.io import read_jsonl
from character.judging.parsing import answer_choices, parse_verdict
from character.preferences.prompts import judge_prompt, preference_system_prompt
from character.preferences.traits import TRAITS


@dataclass
class Subject:
    """A model to evaluate: its weights, and optionally a LoRA adapter on top."""

    name: str
    model: str
    adapter: str | None = None

    @property
    def lora(self) -> LoraAdapter | None:
        return LoraAdapter(f"{self.name}-adapter", self.adapter) if self.adapter else None


def usable_prompts(
    spec: str, tokenizer, max_tokens: int, seed: int, limit: int | None = None
) -> tuple[list[str], int]:
    """Prompts from ``spec`` within ``max_tokens`` tokens, and how many were dropped as too long.

    With ``limit``, a seeded sample of that many is drawn first, so a source of a million prompts
    (WildChat-1M) is not tokenized in full for a few thousand draws.
    """
    prompts = load_prompts(spec, limit=limit, seed=seed)
    kept = [p for p in prompts if len(tokenizer(p, add_special_tokens=False).input_ids) <= max_tokens]
    return kept, len(prompts) - len(kept)


def draw_comparisons(prompts: Sequence[str], n: int, condition: str, seed: int) -> list[dict[str, Any]]:
    """``n`` seeded (prompt, ordered trait pair) draws for one condition."""
    rng = random.Random(row_seed(seed, condition))
    draws = []
    for index in range(n):
        trait_1, trait_2 = rng.sample(TRAITS, 2)
        draws.append(
            {
                "id": f"{condition}-{index}",
                "condition": condition,
                "prompt": rng.choice(prompts),
                "trait_1": trait_1,
                "trait_2": trait_2,
            }
        )
    return draws


def generate_responses(
    engine: Engine | Callable[[], Engine],
    subject: Subject,
    draws: list[dict[str, Any]],
    sampling: Sampling,
    out_path: Path,
) -> list[dict[str, Any]]:
    items = [
        BatchItem(
            id=draw["id"],
            messages=[
                {
                    "role": "system",
                    "content": preference_system_prompt(draw["trait_1"], draw["trait_2"], draw["condition"]),
                },
                {"role": "user", "content": draw["prompt"]},
            ],
            meta={key: draw[key] for key in ("condition", "trait_1", "trait_2")},
        )
        for draw in draws
    ]
    run_batch(engine, items, sampling, out_path, lora=subject.lora, description=f"{subject.name} responses")
    return read_jsonl(out_path)


def judge_responses(
    judge: Engine | Callable[[], Engine],
    responses: list[dict[str, Any]],
    sampling: Sampling,
    out_path: Path,
    extra_keys: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The judge's verdict on each response: one of the row's two traits, or None (invalid).

    The answer is constrained to the two traits where the judge's engine allows it
    (``judge_parsing``), so a verdict is only invalid when the judge wrote freely. ``extra_keys``
    of the response rows are carried into the judgment rows and the result (the judge check keeps
    its known answer beside each verdict this way).
    """
    keys = ("condition", "trait_1", "trait_2", *extra_keys)
    items = [
        BatchItem(
            id=row["id"],
            messages=[
                {
                    "role": "user",
                    "content": judge_prompt(
                        row["messages"][-1]["content"], row["texts"][0], row["trait_1"], row["trait_2"]
                    ),
                }
            ],
            meta={key: row[key] for key in keys},
            choices=answer_choices((row["trait_1"], row["trait_2"])),
        )
        for row in responses
    ]
    run_batch(judge, items, sampling, out_path, description="judging")
    judged = []
    for row in read_jsonl(out_path):
        verdict = parse_verdict(row["texts"][0], (row["trait_1"], row["trait_2"]))
        judged.append({"id": row["id"], **{key: row[key] for key in keys}, "verdict": verdict})
    return judged


def outcomes_from(judged: list[dict[str, Any]], condition: str) -> tuple[list[tuple[int, int]], int, int]:
    """(winner, loser) trait indices of the valid verdicts, in data order; plus valid and total counts."""
    index = {trait: i for i, trait in enumerate(TRAITS)}
    rows = [row for row in judged if row["condition"] == condition]
    outcomes = []
    for row in rows:
        if row["verdict"] is None:
            continue
        other = row["trait_2"] if row["verdict"] == row["trait_1"] else row["trait_1"]
        outcomes.append((index[row["verdict"]], index[other]))
    return outcomes, len(outcomes), len(rows)
