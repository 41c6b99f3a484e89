"""The ``persona_shift`` stage: judge-free proof that training moved the persona, for any model.

On prompts never used in training it measures, for each model variant of the job:
- the persona rate: the share of answers to held-out prompts, asked with no system prompt, that a
  classifier trained on the job's teacher vs student answers judges in persona (the base model,
  the base model prompted with the constitution, the model after DPO, the final model, and the
  steered base model when the robustness stage made it), on the plain prompts and under the
  paper's adversarial "break character" instructions (App. C), each with a 95 % interval, and
  each variant's rate minus the prompted base model's, paired by prompt
  (``character.persona_shift.rate_comparison``);
- the held-out preference accuracy: on the held-out (teacher, student) pairs of ``dpo_data``, the
  share where the trained model's log-probability margin over the base model prefers the teacher's
  answer (DPO's implicit-reward accuracy), after DPO and after SFT, with a 95 % interval;
- beside each persona rate, the quality check of ``character.persona_shift.quality`` with 95 %
  intervals, and each variant against the prompted base model, paired by prompt
  (``character.persona_shift.quality_comparison``).
Then the five checks of ``character.persona_shift.checks`` say which of the method's claims the
job showed (``results.json["checks"]``, metrics ``checks/<name>``).
The answers are the robustness stage's (its ``base`` method is the unprompted base model), so no
text is generated twice.
"""

from __future__ import annotations

import statistics
from typing import Any

from character.distill.outputs import DpoDataOutputs
from character.errors import CharacterError
from character.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from character.persona_shift.checks import check_metrics, persona_checks
from character.persona_shift.intervals import proportion
from character.persona_shift.quality import perplexity, repetition_rate, word_count
from character.persona_shift.quality_comparison import compare_with_reference, summary_interval
from character.persona_shift.rate_classifier import held_out_accuracy, train_rate_classifier
from character.persona_shift.rate_comparison import rate_differences
from character.persona_shift.results import QUALITY_FILE, RESULTS_FILE, results_path
from character.persona_shift.scoring import AnswerScorer
from character.pipeline.engines import stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.robustness.adversarial import DEFAULT_SPLIT
from character.robustness.responses import RobustnessOutputs, method_model, read_responses

# Robustness methods as the report names them, in the order it shows them.
VARIANTS = {
    "base": "base",
    "prompted": "base + constitution prompt",
    "steered": "base + steering vector",
    "distilled": "after DPO",
    "trained": "final (DPO + SFT)",
}
REQUIRED_METHODS = ("base", "trained")
# Model variants whose margin over the base model is the held-out preference accuracy.
TRAINED_VARIANTS = ("distilled", "trained")


def _answer(row: dict[str, Any]) -> tuple[str, str]:
    """(teacher answer, student answer) of a DPO pair."""
    return row["chosen"][-1]["content"], row["rejected"][-1]["content"]


def preference_margins(pairs: list[dict[str, Any]], scorers: dict[str, AnswerScorer]) -> list[dict[str, Any]]:
    """Summed answer log-probs of chosen and rejected under every scorer, per pair."""
    chosen = [pair["chosen"] for pair in pairs]
    rejected = [pair["rejected"] for pair in pairs]
    rows = [{"index": i, "prompt": pair["chosen"][0]["content"]} for i, pair in enumerate(pairs)]
    for name, scorer in scorers.items():
        for side, conversations in (("chosen", chosen), ("rejected", rejected)):
            for row, logprobs in zip(rows, scorer.token_logprobs(conversations), strict=True):
                row[f"{name}_{side}"] = sum(logprobs)
    for row in rows:
        for variant in TRAINED_VARIANTS:
            if f"{variant}_chosen" in row:
                row[f"{variant}_margin"] = (row[f"{variant}_chosen"] - row["base_chosen"]) - (
                    row[f"{variant}_rejected"] - row["base_rejected"]
                )
    return rows


@register_stage
class PersonaShiftStage(Stage):
    name = "persona_shift"
    # 2: per-answer quality rows, quality intervals and the comparison with prompted;
    # 3: persona rates against the prompted base model's, paired by prompt; 4: the checks
    version = 4
    inputs = ("prepare", "dpo_data", "dpo", "merge", "robustness")
    config_keys = ("stages.persona_shift", "model.supports_system_role", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.persona_shift
        generated = RobustnessOutputs.methods(ctx.input_dirs["robustness"])
        methods = [m for m in VARIANTS if m in generated]
        missing = [m for m in REQUIRED_METHODS if m not in methods]
        if missing:
            raise CharacterError(
                f"stages.robustness.methods = {generated} lacks {missing}; the "
                "persona_shift stage compares the unprompted base model with the final model, so it "
                f"needs {list(REQUIRED_METHODS)}."
            )
        seed = stage_seed(ctx.seed, self.name)
        data_dir = ctx.input_dirs["dpo_data"]
        train_pairs = read_jsonl(DpoDataOutputs.train_pairs(data_dir))
        eval_pairs = read_jsonl(DpoDataOutputs.held_out_pairs(data_dir))[: int(params.max_pairs)]
        classifier = train_rate_classifier(
            [_answer(p)[0] for p in train_pairs], [_answer(p)[1] for p in train_pairs], seed
        )
        classifier_check = held_out_accuracy(
            classifier, [_answer(p)[0] for p in eval_pairs], [_answer(p)[1] for p in eval_pairs]
        )
        ctx.log.info(
            "persona_shift: classifier trained on %d teacher and %d student answers; held-out accuracy %.3f",
            classifier.n_persona,
            classifier.n_plain,
            classifier_check.rate,
        )
        responses = {m: read_responses(ctx.input_dirs["robustness"], m) for m in methods}
        verdict_rows, rates = self._persona_rates(classifier, responses)
        rate_vs_prompted = rate_differences(verdict_rows, seed)
        system_role = bool(ctx.cfg.model.supports_system_role)
        base_path = trained_model(ctx)["path"]
        scorer_args = {"supports_system_role": system_role, "batch_size": int(params.batch_size)}
        scorers = {"base": AnswerScorer(base_path, **scorer_args)}
        quality_rows, quality = self._quality(scorers["base"], responses, seed)
        quality_vs_prompted = compare_with_reference(quality_rows, seed)
        for variant in TRAINED_VARIANTS:
            scorers[variant] = AnswerScorer(method_model(ctx, variant), **scorer_args)
        margins = preference_margins(eval_pairs, scorers) if eval_pairs else []
        for scorer in scorers.values():
            scorer.close()
        accuracy = {
            variant: proportion(sum(row[f"{variant}_margin"] > 0 for row in margins), len(margins)).as_dict()
            for variant in TRAINED_VARIANTS
        }
        atomic_write_jsonl(ctx.stage_dir / "verdicts.jsonl", verdict_rows)
        atomic_write_jsonl(ctx.stage_dir / "preference_margins.jsonl", margins)
        atomic_write_jsonl(ctx.stage_dir / QUALITY_FILE, quality_rows)
        results = {
            "variants": {m: VARIANTS[m] for m in methods},
            "persona_rate": rates,
            "persona_rate_vs_prompted": rate_vs_prompted,
            "quality": quality,
            "quality_vs_prompted": quality_vs_prompted,
            "preference_accuracy": accuracy,
            "classifier": {
                "train_in_persona": classifier.n_persona,
                "train_plain": classifier.n_plain,
                "held_out_accuracy": classifier_check.as_dict(),
            },
        }
        results["checks"] = persona_checks(
            results, float(params.min_shift), float(params.min_preference_accuracy)
        )
        atomic_write_json(results_path(ctx.stage_dir), results)
        for method in methods:
            ctx.log.info(
                "persona_shift: %-9s persona rate %.2f [%.2f, %.2f]; adversarial %.2f; repetition %.3f; "
                "base perplexity %.1f",
                method,
                rates[method][DEFAULT_SPLIT]["rate"],
                rates[method][DEFAULT_SPLIT]["low"],
                rates[method][DEFAULT_SPLIT]["high"],
                rates[method].get("adversarial", {}).get("rate", float("nan")),
                quality[method]["repetition"],
                quality[method]["base_perplexity_median"],
            )
        for variant, acc in accuracy.items():
            ctx.log.info(
                "persona_shift: held-out preference accuracy %s %.3f [%.3f, %.3f] on %d pairs",
                variant,
                acc["rate"],
                acc["low"],
                acc["high"],
                acc["n"],
            )
        metrics = {f"persona_rate/{m}": rates[m][DEFAULT_SPLIT]["rate"] for m in methods}
        metrics |= {
            f"persona_rate_adversarial/{m}": rates[m]["adversarial"]["rate"]
            for m in methods
            if "adversarial" in rates[m]
        }
        metrics |= {
            f"persona_rate_vs_prompted/{m}": differences[DEFAULT_SPLIT]["value"]
            for m, differences in rate_vs_prompted.items()
            if DEFAULT_SPLIT in differences
        }
        metrics |= {f"preference_accuracy/{v}": a["rate"] for v, a in accuracy.items()}
        metrics["classifier_held_out_accuracy"] = classifier_check.rate
        metrics |= check_metrics(results["checks"])
        return StageResult(
            outputs=[RESULTS_FILE, "verdicts.jsonl", "preference_margins.jsonl", QUALITY_FILE],
            counts={"held_out_pairs": len(eval_pairs), "responses": len(verdict_rows)},
            metrics=metrics,
        )

    @staticmethod
    def _persona_rates(classifier, responses: dict[str, list[dict[str, Any]]]):
        """Verdict rows, and per method the rate on each split plus the adversarial splits pooled."""
        verdict_rows, rates = [], {}
        for method, rows in responses.items():
            verdicts = classifier.in_persona([row["response"] for row in rows])
            by_split: dict[str, list[bool]] = {}
            for row, verdict in zip(rows, verdicts, strict=True):
                verdict_rows.append({**row, "method": method, "in_persona": verdict})
                by_split.setdefault(row["split"], []).append(verdict)
            rates[method] = {split: proportion(sum(v), len(v)).as_dict() for split, v in by_split.items()}
            adversarial = [v for split, vs in by_split.items() if split != DEFAULT_SPLIT for v in vs]
            if adversarial:
                rates[method]["adversarial"] = proportion(sum(adversarial), len(adversarial)).as_dict()
        return verdict_rows, rates

    @staticmethod
    def _quality(
        scorer: AnswerScorer, responses: dict[str, list[dict[str, Any]]], seed: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per-answer quality rows of each method's default-split answers, and per method the
        repetition (mean) and base perplexity (median) with 95 % intervals, length and empties."""
        answer_rows, quality = [], {}
        for method, rows in responses.items():
            rows = [row for row in rows if row["split"] == DEFAULT_SPLIT]
            conversations = [
                [
                    {"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row["response"]},
                ]
                for row in rows
            ]
            perplexities = [perplexity(lp) for lp in scorer.token_logprobs(conversations)]
            method_rows = [
                {
                    "method": method,
                    "prompt_index": row["prompt_index"],
                    "repetition": repetition_rate(row["response"]),
                    "base_perplexity": ppl,
                    "words": word_count(row["response"]),
                }
                for row, ppl in zip(rows, perplexities, strict=True)
            ]
            answer_rows += method_rows
            repetition = summary_interval([r["repetition"] for r in method_rows], "mean", seed)
            base_perplexity = summary_interval([r["base_perplexity"] for r in method_rows], "median", seed)
            quality[method] = {
                "responses": len(rows),
                "repetition": repetition["value"],
                "repetition_interval": repetition,
                "base_perplexity_median": base_perplexity["value"],
                "base_perplexity_interval": base_perplexity,
                "words_mean": statistics.fmean(r["words"] for r in method_rows) if rows else float("nan"),
                "empty": sum(not row["response"].strip() for row in rows),
            }
        return answer_rows, quality
