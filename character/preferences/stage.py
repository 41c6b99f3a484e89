"""The ``eval`` stage: revealed preferences of the base model before and the final model after,
with the judge's accuracy on known answers (``judge_check``) beside them."""

from __future__ import annotations

from typing import Any

from character.pipeline.engines import engine_factory, stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.preferences.comparisons import Subject
from character.preferences.outputs import FOLDER, PreferenceOutputs
from character.preferences.run import run_preference_eval
from character.training.outputs import MergeOutputs


@register_stage
class EvalStage(Stage):
    name = "eval"
    inputs = ("prepare", "merge")
    config_keys = ("stages.eval", "engines.student", "engines.judge", "model.supports_system_role", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoTokenizer

        base = trained_model(ctx)["path"]
        subjects = [
            Subject("before", base),
            Subject("after", str(MergeOutputs.final_model(ctx.input_dirs["merge"]))),
        ]
        out_dir = PreferenceOutputs.folder(ctx.stage_dir)
        out_dir.mkdir(exist_ok=True)
        summary = run_preference_eval(
            subjects,
            lambda subject: engine_factory(ctx, "student", model_path=subject.model),
            engine_factory(ctx, "judge"),
            ctx.cfg.stages.eval.preferences,
            out_dir,
            stage_seed(ctx.seed, self.name),
            AutoTokenizer.from_pretrained(base),
            ctx.log,
        )
        invalid = {
            f"{s}/{c}": v["invalid_rate"] for s, cs in summary["subjects"].items() for c, v in cs.items()
        }
        counts: dict[str, Any] = {"prompts": summary["prompts"], "invalid_rate": invalid}
        metrics: dict[str, Any] = {"spearman": summary.get("spearman", {})}
        if "judge_check" in summary:  # the judge's accuracy on known answers (judge_check.py)
            check = summary["judge_check"]
            counts["judge_check"] = {key: check[key] for key in ("cases", "correct", "invalid")}
            metrics["judge_check_accuracy"] = check["accuracy"]["rate"]
        return StageResult(
            outputs=[f"{FOLDER}/{name}" for name in summary["outputs"]], counts=counts, metrics=metrics
        )
