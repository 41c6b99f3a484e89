"""A plugin stage whose numbers depend on the persona, for the tracking and compare tests.

Loaded with ``plugins=[tests.tracking.persona_stage]``. It writes what the real training and eval
stages write, in miniature: a per-step ``metrics.jsonl``, a CSV table and a PNG plot, and returns
metrics (one nested, like the eval stage's Spearman correlations) that differ between personas,
so a test can tell whose numbers ended up in which W&B run or table row. ``api_token`` is a
secret-looking config field (config_keys include it); the stage reports only its length, which
shows the secret reached the stage while the tests check that no file recorded it.
"""

from __future__ import annotations

import csv
import json

from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


def loss(persona: str, step: int) -> float:
    return len(persona) / step


@register_stage
class PersonaStats(Stage):
    name = "persona_stats"
    inputs = ("prepare",)
    config_keys = ("persona.name", "plugin_params.persona_stats")

    def run(self, ctx: StageContext) -> StageResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        params = ctx.cfg.plugin_params.get("persona_stats", {})
        if params.get("fail", False):
            raise RuntimeError("planted failure in persona_stats")
        persona = str(ctx.cfg.persona.name)
        with (ctx.stage_dir / "metrics.jsonl").open("w") as handle:
            for step in (1, 2, 3):
                handle.write(json.dumps({"global_step": step, "loss": loss(persona, step)}) + "\n")
        letters = sorted(set(persona))
        with (ctx.stage_dir / "letters.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["letter", "count"])
            writer.writerows([letter, persona.count(letter)] for letter in letters)
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.bar(letters, [persona.count(letter) for letter in letters])
        fig.savefig(ctx.stage_dir / "letters.png")
        plt.close(fig)
        return StageResult(
            outputs=["metrics.jsonl", "letters.csv", "letters.png"],
            counts={"letters": len(letters)},
            metrics={
                "name_length": len(persona),
                "final_loss": loss(persona, 3),
                "spearman": {"before ~ after (like)": round(0.5 + len(persona) / 100, 4)},
                "token_length": len(str(params.get("api_token", ""))),
            },
        )
