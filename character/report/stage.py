"""The ``report`` stage: one ``report.md`` with its figures at the root of the run directory.

A person who ran the job opens one file and sees whether the persona moved (the judge-free
persona rate and held-out preference accuracy, with intervals), at what cost (the quality check,
coherence, capabilities), what the model now prefers (revealed preferences), and what its answers
look like before and after. It reads only what the evaluation stages recorded.
"""

from __future__ import annotations

from character.capabilities.outputs import CAPABILITIES_OUTPUTS
from character.coherence.outputs import COHERENCE_OUTPUTS
from character.io import atomic_write_bytes, atomic_write_text, read_json
from character.persona_shift.results import results_path
from character.pipeline.job_summary import read_job_summary
from character.pipeline.prepare_outputs import PrepareOutputs
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.report import markdown as md
from character.report.figures import persona_shift_figure

REPORT = "report.md"
FIGURE = "persona_shift.png"


@register_stage
class ReportStage(Stage):
    name = "report"
    inputs = ("prepare", "eval", "robustness", "persona_shift", "coherence", "capabilities")
    config_keys = ("stages.report", "scale", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        run_dir, inputs = ctx.run_dir, ctx.input_dirs
        results = read_json(results_path(inputs["persona_shift"]))
        model = PrepareOutputs.model(inputs["prepare"])["name"]
        persona = PrepareOutputs.persona(inputs["prepare"])["name"]
        title = f"{persona} on {model}"
        persona_shift_figure(ctx.stage_dir / FIGURE, results, f"Persona shift: {title}")
        summary = read_job_summary(run_dir)
        times = [
            {"stage": name, "status": s.get("status"), "seconds": s.get("duration_s", "")}
            for name, s in summary.get("stages", {}).items()
        ]
        lines = [
            f"# Character training report: {title}",
            "",
            f"Scale `{ctx.cfg.scale}`, seed {ctx.cfg.seed}. Every number below was measured on prompts "
            "the model never trained on; intervals are 95 %.",
            "",
            *md.headline(results),
            "",
            f"![persona shift]({FIGURE})",
            "",
            "## Persona rate and answer quality by model variant",
            "",
            *md.persona_tables(results),
            "",
            "## Revealed preferences (paper §3.1)",
            "",
            *md.preferences_section(inputs["eval"], run_dir),
            "",
            "## Coherence (paper §3.3)",
            "",
            *md.table_file_section(COHERENCE_OUTPUTS, inputs["coherence"], run_dir),
            "",
            "## Capabilities (paper App. F)",
            "",
            *md.table_file_section(CAPABILITIES_OUTPUTS, inputs["capabilities"], run_dir),
            "",
            "## Held-out prompts: base vs final model",
            "",
            *md.examples_section(inputs["robustness"], int(ctx.cfg.stages.report.examples)),
        ]
        if times:
            lines += ["## Stage times", "", md.markdown_table(times, floatfmt=".1f"), ""]
        text = "\n".join(lines) + "\n"
        atomic_write_text(ctx.stage_dir / REPORT, text)
        # The copies at the root are what a person opens; the stage folder keeps the originals.
        atomic_write_text(run_dir / REPORT, text)
        atomic_write_bytes(run_dir / FIGURE, (ctx.stage_dir / FIGURE).read_bytes())
        ctx.log.info("report: %s", run_dir / REPORT)
        return StageResult(outputs=[REPORT, FIGURE])
