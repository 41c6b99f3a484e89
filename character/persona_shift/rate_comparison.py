"""Each model variant's persona rate against the prompted base model's, paired by prompt.

"The final model is at least as much in persona as the prompted base model" compares two rates of
a few dozen answers each. Their Wilson intervals overlap in most small runs, which says nothing
about the difference itself; but every variant answers the same prompts, so the difference can be
measured paired: the share of prompts answered in persona by the variant minus the share by the
prompted base model, with a paired bootstrap interval over prompts (the rule and code of the
quality comparison). An interval that spans zero says the two are not measurably different.
"""

from __future__ import annotations

from typing import Any

from character.persona_shift.quality_comparison import REFERENCE_VARIANT, paired_difference
from character.robustness.adversarial import DEFAULT_SPLIT


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, float]]]:
    """Per method, per prompt index: the 0/1 verdict on the plain prompt (``default``), and the
    share of the adversarial instructions under which the answer stayed in persona
    (``adversarial``). Answers to one prompt under several instructions are not independent, so
    the prompt, not the answer, is the unit the bootstrap resamples; the mean over prompts of
    these shares is the pooled adversarial rate, as every prompt gets every instruction."""
    collected: dict[str, dict[str, dict[int, list[float]]]] = {}
    for row in rows:
        group = DEFAULT_SPLIT if row["split"] == DEFAULT_SPLIT else "adversarial"
        verdicts = collected.setdefault(row["method"], {}).setdefault(group, {})
        verdicts.setdefault(int(row["prompt_index"]), []).append(float(bool(row["in_persona"])))
    return {
        method: {
            group: {index: sum(v) / len(v) for index, v in by_prompt.items()}
            for group, by_prompt in groups.items()
        }
        for method, groups in collected.items()
    }


def rate_differences(verdict_rows: list[dict[str, Any]], seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """For every variant but the prompted base model: its persona rate minus the prompted base
    model's, on the plain prompts and under the adversarial instructions (pooled), each paired by
    prompt with a 95 % interval. ``verdict_rows`` are the persona_shift stage's verdicts (method, split,
    prompt_index, in_persona); empty when the prompted base model was not run."""
    by_method = _verdicts(verdict_rows)
    reference = by_method.get(REFERENCE_VARIANT)
    if reference is None:
        return {}
    return {
        method: {
            group: paired_difference(verdicts, reference[group], "mean", seed)
            for group, verdicts in groups.items()
            if group in reference
        }
        for method, groups in by_method.items()
        if method != REFERENCE_VARIANT
    }
