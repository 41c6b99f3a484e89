"""Two small stages used by the runner tests (loaded with ``plugins=[tests.plugins.toy_stages]``).

They are real stages run by the real runner; they only stand in for the method's generation
stages so that resume, skip and rerun can be tested in seconds. ``toy_rows`` writes one row per
id, slowly if asked, through the same ``JsonlAppender`` the generation stages use, and logs every
row it computes to ``calls.log`` so a test can tell which work was redone.
"""

from __future__ import annotations

import time

from character.io import JsonlAppender, read_jsonl
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


@register_stage
class ToyRows(Stage):
    name = "toy_rows"
    inputs = ("prepare",)
    config_keys = ("plugin_params.toy_rows.rows", "plugin_params.toy_rows.salt", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.plugin_params.get("toy_rows", {})
        rows, delay = int(params.get("rows", 10)), float(params.get("delay", 0.0))
        salt = str(params.get("salt", ""))
        with JsonlAppender(ctx.stage_dir / "rows.jsonl") as out:
            resumed = len(out.done_keys)
            for index in range(rows):
                if index in out.done_keys:
                    continue
                with (ctx.stage_dir / "calls.log").open("a") as calls:
                    calls.write(f"{index}\n")
                time.sleep(delay)
                out.write({"id": index, "value": index * index + ctx.seed, "salt": salt})
        return StageResult(outputs=["rows.jsonl"], counts={"rows": rows, "resumed": resumed})


@register_stage
class ToyCount(Stage):
    name = "toy_count"
    inputs = ("toy_rows",)
    config_keys = ("plugin_params.toy_count.scale",)

    def run(self, ctx: StageContext) -> StageResult:
        scale = float(ctx.cfg.plugin_params.get("toy_count", {}).get("scale", 1.0))
        rows = read_jsonl(ctx.input_dirs["toy_rows"] / "rows.jsonl")
        total = sum(row["value"] for row in rows) * scale
        (ctx.stage_dir / "total.txt").write_text(f"{total}\n")
        return StageResult(outputs=["total.txt"], counts={"rows": len(rows)}, metrics={"total": total})
