"""The ``coherence`` stage: the Appendix D judge on pairs of methods' default-split responses.

Every configured pair ``a:b`` (e.g. trained:steered) is judged by every configured judge, each
comparison in both orders; ``coherence`` turns the two verdicts into a kept win or a counted drop.
Every judge is also checked on known answers first (``judge_check``): a sample of the first
method's responses against word-shuffled copies of themselves, judged the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from character.coherence.judge_check import coherence_check_result, coherence_check_rows, log_coherence_check
from character.coherence.judgments import (
    VERDICT_CHOICES,
    coherence_prompt,
    outcomes_from_judgments,
    win_rate,
)
from character.coherence.outputs import COHERENCE_OUTPUTS
from character.engines.batch import BatchItem, run_batch
from character.errors import CharacterError
from character.io import atomic_write_json, read_jsonl
from character.judging.check import CHECK
from character.pipeline.engines import LazyEngine, engine_factory, sampling_from, stage_seed
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.reporting import grouped_bars, write_tables
from character.robustness.adversarial import DEFAULT_SPLIT
from character.robustness.responses import RobustnessOutputs, read_responses


def parse_pairs(pairs: list[str], methods: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for pair in pairs:
        parts = pair.split(":")
        if len(parts) != 2 or parts[0] == parts[1] or any(p not in methods for p in parts):
            raise CharacterError(
                f"stages.coherence.pairs has {pair!r}: expected 'a:b' with two different methods the "
                f"robustness stage generated ({methods})."
            )
        parsed.append((parts[0], parts[1]))
    return parsed


def judges(ctx: StageContext) -> dict[str, LazyEngine]:
    """The judges by name: engines.judge as ``judge``, or the configured ones (each engine built
    like any role's, ``character.engines.roles``)."""
    configured: DictConfig = ctx.cfg.stages.coherence.judges
    if not configured:
        return {"judge": engine_factory(ctx, "judge")}
    return {name: engine_factory(ctx, name, engine_cfg=engine_cfg) for name, engine_cfg in configured.items()}


def comparison_items(
    a: str, b: str, rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], traits: list[str]
) -> list[BatchItem]:
    """Two judge prompts per prompt both methods answered: (a, b) and (b, a), each answered with
    one of ``VERDICT_CHOICES`` where the judge's engine constrains answers."""
    by_index_b = {row["prompt_index"]: row for row in rows_b if row["split"] == DEFAULT_SPLIT}
    items = []
    for row_a in rows_a:
        row_b = by_index_b.get(row_a["prompt_index"])
        if row_a["split"] != DEFAULT_SPLIT or row_b is None:
            continue
        index, message = row_a["prompt_index"], row_a["prompt"]
        for order, (first, second) in (("fwd", (row_a, row_b)), ("bwd", (row_b, row_a))):
            prompt = coherence_prompt(message, first["response"], second["response"], traits)
            items.append(
                BatchItem(
                    id=f"{index}/{order}",
                    messages=[{"role": "user", "content": prompt}],
                    meta={"prompt_index": index, "order": order},
                    choices=VERDICT_CHOICES,
                )
            )
    return items


@register_stage
class CoherenceStage(Stage):
    name = "coherence"
    inputs = ("prepare", "robustness")
    config_keys = (
        "stages.coherence",
        "engines.judge",
        "model.supports_system_role",
        "persona.traits",
        "seed",
    )

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.coherence
        methods = RobustnessOutputs.methods(ctx.input_dirs["robustness"])
        pairs = parse_pairs(list(params.pairs), methods)
        traits = [t.trait for t in ctx.cfg.persona.traits]
        robustness_dir: Path = ctx.input_dirs["robustness"]
        responses = {m: read_responses(robustness_dir, m) for m in {m for pair in pairs for m in pair}}
        seed = stage_seed(ctx.seed, self.name)
        sampling = sampling_from(params.sampling, seed)
        results: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        outputs: list[str] = []
        # the judge check's cases: responses of the first method of the pairs, intact and degraded
        check_source = pairs[0][0] if pairs and int(params.judge_check) > 0 else None
        intact, degraded = (
            coherence_check_rows(responses[check_source], int(params.judge_check), seed)
            if check_source is not None
            else ([], [])
        )
        if check_source is not None and not intact:
            ctx.log.warning("judge check (coherence): no %s response has two different words", check_source)
        for judge_name, judge in judges(ctx).items():
            with judge:
                if check_source is not None:
                    items = comparison_items("intact", "degraded", intact, degraded, traits)
                    outcomes: list[str] = []
                    if items:
                        path = ctx.stage_dir / CHECK / f"{judge_name}.jsonl"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        run_batch(judge, items, sampling, path, description=f"judge check ({judge_name})")
                        outputs.append(str(path.relative_to(ctx.stage_dir)))
                        outcomes = outcomes_from_judgments(read_jsonl(path))
                    checks.append(coherence_check_result(outcomes, judge_name, check_source))
                    log_coherence_check(ctx.log, checks[-1])
                for a, b in pairs:
                    path = ctx.stage_dir / "judgments" / judge_name / f"{a}_vs_{b}.jsonl"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    items = comparison_items(a, b, responses[a], responses[b], traits)
                    description = f"coherence {a} vs {b} ({judge_name})"
                    run_batch(judge, items, sampling, path, description=description)
                    outputs.append(str(path.relative_to(ctx.stage_dir)))
                    result = win_rate(outcomes_from_judgments(read_jsonl(path)))
                    results.append({"judge": judge_name, "pair": f"{a} vs {b}", **result.as_dict()})
                    ctx.log.info(
                        "coherence (%s): %s beats %s in %d of %d kept comparisons (%d judged; dropped %s)",
                        judge_name,
                        a,
                        b,
                        result.wins,
                        result.kept,
                        result.total,
                        result.dropped,
                    )
        outputs += self._report(ctx.stage_dir, results)
        metrics = {f"{r['judge']}/{r['pair'].replace(' ', '_')}/win_rate": r["win_rate"] for r in results}
        counts: dict[str, Any] = {"comparisons": sum(r["total"] for r in results)}
        if check_source is not None:
            check_path = COHERENCE_OUTPUTS.judge_check(ctx.stage_dir)
            atomic_write_json(check_path, {"judges": checks})
            outputs.append(check_path.name)
            metrics |= {f"{c['judge']}/judge_check_accuracy": c["accuracy"]["rate"] for c in checks}
            counts["judge_check"] = {
                c["judge"]: {key: c[key] for key in ("cases", "correct", "invalid", "inconsistent")}
                for c in checks
            }
        return StageResult(outputs=outputs, counts=counts, metrics=metrics)

    @staticmethod
    def _report(stage_dir: Path, results: list[dict[str, Any]]) -> list[str]:
        rows = [
            {
                "judge": r["judge"],
                "pair": r["pair"],
                "win_rate": r["win_rate"],
                "se": r["se"],
                "kept": r["kept"],
                "judged": r["total"],
                **{f"dropped_{k}": v for k, v in r["dropped"].items()},
            }
            for r in results
        ]
        outputs = write_tables(COHERENCE_OUTPUTS.tables(stage_dir), rows)
        atomic_write_json(stage_dir / "summary.json", {"results": results})
        pairs = list(dict.fromkeys(r["pair"] for r in results))
        judge_names = list(dict.fromkeys(r["judge"] for r in results))
        lookup = {(r["judge"], r["pair"]): r for r in results}
        grouped_bars(
            COHERENCE_OUTPUTS.figure(stage_dir),
            pairs,
            {j: [lookup[(j, p)]["win_rate"] for p in pairs] for j in judge_names},
            {j: [lookup[(j, p)]["se"] for p in pairs] for j in judge_names},
            title="Coherence: win rate of the first method (± SE)",
            ylabel="win rate",
            ylim=(0.0, 1.0),
        )
        return [*outputs, "summary.json", COHERENCE_OUTPUTS.figure(stage_dir).name]
