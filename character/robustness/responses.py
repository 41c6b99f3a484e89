"""What the ``robustness`` stage generated, for everything that reads it: the weights each method
generated with, the methods it generated (``RobustnessOutputs``, which ``RobustnessStage``
inherits), and its responses as rows.

Here rather than in the stage module, so that the coherence, persona_shift and report stages and
``launchers.robustness`` read them without importing another stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.errors import CharacterError
from character.io import read_jsonl
from character.pipeline import manifest as mf
from character.pipeline.engines import trained_model
from character.pipeline.stage import StageContext
from character.training.outputs import DpoOutputs, MergeOutputs

FIRST_TURN = "first_turn"  # prefill/first_turn.jsonl: the original model's first answers


class RobustnessOutputs:
    STAGE = "robustness"  # the stage's name, and its folder in a run directory

    @staticmethod
    def methods(robustness_dir: Path) -> list[str]:
        """The methods whose responses a finished robustness stage wrote, in its config's order."""
        return _written(robustness_dir, "responses")

    @staticmethod
    def prefill_methods(robustness_dir: Path) -> list[str]:
        """The methods a finished robustness stage ran the prefill attack on (none when it was off)."""
        return [method for method in _written(robustness_dir, "prefill") if method != FIRST_TURN]


def _written(robustness_dir: Path, folder: str) -> list[str]:
    """``<folder>/<method>.jsonl`` outputs of the stage's manifest, as method names."""
    manifest = mf.read_manifest(robustness_dir)
    if manifest is None:
        raise CharacterError(f"{robustness_dir} has no finished robustness stage (no {mf.MANIFEST}).")
    return [
        path.removeprefix(f"{folder}/").removesuffix(".jsonl")
        for path in manifest["outputs"]
        if path.startswith(f"{folder}/")
    ]


def method_model(ctx: StageContext, method: str) -> str:
    """The weights a method generates with (the steered and prompted baselines use the base)."""
    if method == "distilled":
        return str(DpoOutputs.merged_model(ctx.input_dirs["dpo"]))
    if method == "trained":
        return str(MergeOutputs.final_model(ctx.input_dirs["merge"]))
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
