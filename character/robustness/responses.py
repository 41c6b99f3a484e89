"""What the ``robustness`` stage generated, for everything that reads it: the weights each method
generated with, and its responses as rows.

Here rather than in the stage module, so that the coherence, persona_shift and report stages and
``launchers.robustness`` read them without importing another stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.io import read_jsonl
from character.pipeline.engines import trained_model
from character.pipeline.stage import StageContext
from character.training.stages import DpoStage, MergeStage


def method_model(ctx: StageContext, method: str) -> str:
    """The weights a method generates with (the steered and prompted baselines use the base)."""
    if method == "distilled":
        return str(DpoStage.merged_model(ctx.input_dirs["dpo"]))
    if method == "trained":
        return str(MergeStage.final_model(ctx.input_dirs["merge"]))
    return trained_model(ctx)["path"]


def read_responses(stage_dir: Path, method: str, prefill: bool = False) -> list[dict[str, Any]]:
    """One method's rows as (split, prompt_index, prompt, response) dicts."""
    path = stage_dir / ("prefill" if prefill else "responses") / f"{method}.jsonl"
    return [
        {
            "split": row["split"],
            "prompt_index": row["prompt_index"],
            "prompt": row["messages"][-1]["content"],
            "response": row["texts"][0],
        }
        for row in read_jsonl(path)
    ]
