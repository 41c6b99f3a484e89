"""The ``dpo``, ``sft`` and ``merge`` stages (paper §2.3, §2.4; App. A/B.3).

- ``dpo`` trains a LoRA adapter on the distillation pairs with openrlhf_ext's DPO (+ NLL + per-token
  KL), then folds it into the base model (``DpoStage.merged_model``): the post-distillation
  checkpoint.
- ``sft`` trains a second LoRA adapter on the introspection transcripts, on top of that model,
  and reports, per source, how many of the examples it trains on are whole, truncated or dropped
  at ``stages.sft.max_len`` (counted by ``sft_data``, character/introspection/sft_lengths.py).
- ``merge`` writes the final model (exact composition of both stages; ``MergeStage.final_model``)
  and two single adapters on the base model: the exact composition (weights 1, 1) and the paper's
  release form (1.0, 0.25).

Later stages find these models through the accessors, never by spelling their folders; the
accessors are defined in character/training/outputs.py (``DpoOutputs``, ``SftOutputs``,
``MergeOutputs``), which the stages inherit and other stage modules import instead of this one.

Training restarts from the last DeepSpeed checkpoint when an interrupted stage is rerun.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from character.distill.outputs import DpoDataOutputs
from character.introspection.outputs import SftDataOutputs
from character.introspection.sft_lengths import LengthVerdict, tally
from character.io import read_jsonl
from character.pipeline.engines import stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.training.merge import combine_adapters, fold_adapter
from character.training.outputs import DpoOutputs, MergeOutputs, SftOutputs
from character.training.run import final_metrics, run_training
from openrlhf_ext.argv import dpo_argv, sft_argv
from openrlhf_ext.lora_targets import linear_module_names, resolve_lora_targets

MERGE_DTYPE = "bfloat16"


def lora_targets(ctx: StageContext, model_path: str) -> list[str]:
    return resolve_lora_targets(
        list(ctx.cfg.model.lora_target_modules), linear_module_names(model_path), trained_model(ctx)["name"]
    )


def _dtype(ctx: StageContext) -> str:
    return "float32" if ctx.cfg.model.dtype == "float32" else MERGE_DTYPE


@register_stage
class DpoStage(DpoOutputs, Stage):
    name = "dpo"
    inputs = ("prepare", "dpo_data")
    config_keys = ("stages.dpo", "model.lora_target_modules", "model.dtype", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params, base = ctx.cfg.stages.dpo, trained_model(ctx)["path"]
        data = ctx.input_dirs["dpo_data"]
        eval_path = DpoDataOutputs.held_out_pairs(data)
        argv = dpo_argv(
            params,
            model_path=base,
            dataset=DpoDataOutputs.train_pairs(data),
            eval_dataset=eval_path if read_jsonl(eval_path) else None,
            output_dir=self.adapter(ctx.stage_dir),
            ckpt_dir=ctx.stage_dir / "ckpt",
            metrics_file=ctx.stage_dir / "metrics.jsonl",
            target_modules=lora_targets(ctx, base),
            seed=stage_seed(ctx.seed, self.name),
        )
        run_training(
            "openrlhf_ext.cli.train_dpo", argv, ctx.stage_dir / "train.log", params.launcher, ctx.log
        )
        shutil.rmtree(ctx.stage_dir / "ckpt", ignore_errors=True)  # resume points, not results
        fold_adapter(base, self.adapter(ctx.stage_dir), self.merged_model(ctx.stage_dir), _dtype(ctx))
        metrics = final_metrics(ctx.stage_dir / "metrics.jsonl")
        return StageResult(
            outputs=[
                *_adapter_files(self.adapter(ctx.stage_dir)),
                self.merged_model(ctx.stage_dir).name,
                "metrics.jsonl",
            ],
            counts={"steps": metrics.get("steps", 0)},
            metrics=metrics,
        )


def _adapter_files(adapter: Path) -> list[str]:
    return [f"{adapter.name}/adapter_config.json", f"{adapter.name}/adapter_model.safetensors"]


def trained_lengths(sft_data_dir: Path, params: Any) -> dict[str, dict[str, int]]:
    """Per source, whole / truncated / dropped among the rows the trainer reads: all of
    ``train.jsonl``, or its first ``max_steps * batch_size`` with ``max_steps`` (``--data.max_samples``)."""
    rows = read_jsonl(SftDataOutputs.lengths(sft_data_dir))
    if params.max_steps:
        rows = rows[: int(params.max_steps) * int(params.batch_size)]
    verdicts = [LengthVerdict(row["fate"], row["tokens"], row["prompt_tokens"]) for row in rows]
    return tally([row["source"] for row in rows], verdicts)


@register_stage
class SftStage(SftOutputs, Stage):
    name = "sft"
    inputs = ("prepare", "dpo", "sft_data")
    config_keys = ("stages.sft", "model.lora_target_modules", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.sft
        start = str(DpoOutputs.merged_model(ctx.input_dirs["dpo"]))
        argv = sft_argv(
            params,
            model_path=start,
            dataset=SftDataOutputs.train_set(ctx.input_dirs["sft_data"]),
            output_dir=self.adapter(ctx.stage_dir),
            ckpt_dir=ctx.stage_dir / "ckpt",
            metrics_file=ctx.stage_dir / "metrics.jsonl",
            target_modules=lora_targets(ctx, start),
            seed=stage_seed(ctx.seed, self.name),
        )
        run_training(
            "openrlhf_ext.cli.train_sft", argv, ctx.stage_dir / "train.log", params.launcher, ctx.log
        )
        shutil.rmtree(ctx.stage_dir / "ckpt", ignore_errors=True)  # resume points, not results
        metrics = final_metrics(ctx.stage_dir / "metrics.jsonl")
        examples = trained_lengths(ctx.input_dirs["sft_data"], params)
        return StageResult(
            outputs=[*_adapter_files(self.adapter(ctx.stage_dir)), "metrics.jsonl"],
            counts={"steps": metrics.get("steps", 0), "examples": examples},
            metrics=metrics,
        )


@register_stage
class MergeStage(MergeOutputs, Stage):
    name = "merge"
    inputs = ("prepare", "dpo", "sft")
    config_keys = ("stages.merge", "model.dtype")

    def run(self, ctx: StageContext) -> StageResult:
        params, base = ctx.cfg.stages.merge, trained_model(ctx)["path"]
        dpo, sft = DpoOutputs.adapter(ctx.input_dirs["dpo"]), SftOutputs.adapter(ctx.input_dirs["sft"])
        final = self.final_model(ctx.stage_dir)
        fold_adapter(DpoOutputs.merged_model(ctx.input_dirs["dpo"]), sft, final, _dtype(ctx))
        composed, release = self.composed_adapter(ctx.stage_dir), self.release_adapter(ctx.stage_dir)
        combine_adapters(base, [(dpo, 1.0), (sft, 1.0)], composed, _dtype(ctx))
        combine_adapters(base, [(dpo, params.dpo_weight), (sft, params.sft_weight)], release, _dtype(ctx))
        ctx.log.info("merge: final model in %s", final)
        return StageResult(
            outputs=[
                final.name,
                f"{composed.name}/adapter_config.json",
                f"{release.name}/adapter_config.json",
            ],
            counts={"dpo_weight": params.dpo_weight, "sft_weight": params.sft_weight},
        )
