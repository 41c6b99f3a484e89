"""Two small stages used by the runner tests (loaded with ``plugins=[tests.plugins.toy_stages]``).

They are real stages run by the real runner; they only stand in for the method's generation
stages so that resume, skip and rerun can be tested in seconds. ``toy_rows`` writes one row per
id, slowly if asked, through the same ``JsonlAppender`` the generation stages use, and logs every
row it computes to ``calls.log`` so a test can tell which work was redone. With ``teardown_s`` it
ends like a generation stage whose engine shuts down in a finalizer, slowly, so that a signal can
be sent while that finalizer runs.
"""

from __future__ import annotations

import time
from pathlib import Path

from character.io import JsonlAppender, read_jsonl
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


class SlowTeardown:
    """Stands in for an inference engine whose shutdown runs in a finalizer and takes a while."""

    def __init__(self, started_marker: Path, seconds: float) -> None:
        self.started_marker, self.seconds = started_marker, seconds

    def __del__(self) -> None:
        self.started_marker.write_text("the finalizer is running\n")
        deadline = time.time() + self.seconds
        while time.time() < deadline:  # Python-level sleeps: a signal's handler runs in here
            time.sleep(0.05)


@register_stage
class ToyRows(Stage):
    name = "toy_rows"
    inputs = ("prepare",)
    config_keys = ("plugin_params.toy_rows.rows", "plugin_params.toy_rows.salt", "seed")
    # how slowly rows come and the engine stand-in's shutdown: the same rows either way
    runtime_keys = ("plugin_params.toy_rows.delay", "plugin_params.toy_rows.teardown_s")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.plugin_params.get("toy_rows", {})
        rows, delay = int(params.get("rows", 10)), float(params.get("delay", 0.0))
        salt = str(params.get("salt", ""))
        teardown_s = float(params.get("teardown_s", 0.0))
        engine = SlowTeardown(ctx.stage_dir / "teardown.started", teardown_s) if teardown_s else None
        with JsonlAppender(ctx.stage_dir / "rows.jsonl") as out:
            resumed = len(out.done_keys)
            for index in range(rows):
                if index in out.done_keys:
                    continue
                with (ctx.stage_dir / "calls.log").open("a") as calls:
                    calls.write(f"{index}\n")
                time.sleep(delay)
                out.write({"id": index, "value": index * index + ctx.seed, "salt": salt})
        del engine  # its finalizer runs here, as an engine's does when its stage closes it
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
