"""The ``capabilities`` stage: benchmark scores of the base model (before) and the final model
(after), their differences, a table and a plot (paper App. F, Table 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.capabilities.harness import evaluate_model, resolve_include_path
from character.capabilities.outputs import CAPABILITIES_OUTPUTS
from character.io import atomic_write_json, read_json
from character.pipeline.engines import stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.reporting import grouped_bars, write_tables
from character.training.outputs import MergeOutputs


def comparison_rows(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per benchmark: scores ± SE before and after, and the change, in points /100."""
    rows = []
    for b, a in zip(before, after, strict=True):
        rows.append(
            {
                "benchmark": f"{b['task']} ({b['num_fewshot']}-shot {b['metric']})",
                "before": 100 * b["score"],
                "before_se": 100 * b["se"],
                "after": 100 * a["score"],
                "after_se": 100 * a["se"],
                "change": 100 * (a["score"] - b["score"]),
                "n": b["n"],
            }
        )
    return rows


@register_stage
class CapabilitiesStage(Stage):
    name = "capabilities"
    inputs = ("prepare", "merge")
    config_keys = ("stages.capabilities", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.capabilities
        include_path = resolve_include_path(params.include_path, ctx.stage_dir)
        after = str(MergeOutputs.final_model(ctx.input_dirs["merge"]))
        subjects = {"before": trained_model(ctx)["path"], "after": after}
        results: dict[str, list[dict[str, Any]]] = {}
        for name, model_path in subjects.items():
            path = ctx.stage_dir / "results" / f"{name}.json"
            if path.exists():  # a resumed run keeps a subject already scored
                results[name] = read_json(path)["benchmarks"]
                continue
            ctx.log.info("capabilities: scoring %s (%s)", name, model_path)
            results[name] = evaluate_model(
                model_path,
                list(params.benchmarks),
                include_path=include_path,
                limit=params.limit,
                batch_size=int(params.batch_size),
                device=params.device,
                dtype=params.dtype,
                seed=stage_seed(ctx.seed, self.name),
            )
            atomic_write_json(path, {"model": model_path, "benchmarks": results[name]})
        rows = comparison_rows(results["before"], results["after"])
        outputs = [
            "results/before.json",
            "results/after.json",
            *write_tables(CAPABILITIES_OUTPUTS.tables(ctx.stage_dir), rows),
        ]
        figure = CAPABILITIES_OUTPUTS.figure(ctx.stage_dir)
        self._plot(figure, rows)
        for row in rows:
            ctx.log.info(
                "capabilities: %s: %.1f ± %.1f -> %.1f ± %.1f",
                row["benchmark"],
                row["before"],
                row["before_se"],
                row["after"],
                row["after_se"],
            )
        metrics = {f"{r['benchmark'].split(' ')[0]}/change": r["change"] for r in rows}
        return StageResult(outputs=[*outputs, figure.name], counts={"benchmarks": len(rows)}, metrics=metrics)

    @staticmethod
    def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
        grouped_bars(
            path,
            [r["benchmark"] for r in rows],
            {"before": [r["before"] for r in rows], "after": [r["after"] for r in rows]},
            {"before": [r["before_se"] for r in rows], "after": [r["after_se"] for r in rows]},
            title="General capabilities before vs after character training (± SE)",
            ylabel="score / 100",
        )
