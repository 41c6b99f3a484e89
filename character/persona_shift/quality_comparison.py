"""Answer quality per model variant with 95 % intervals, and each variant against the prompted base.

The quality numbers of ``character.persona_shift.quality`` are summaries of a few dozen answers, so
a point estimate alone cannot say whether one model is more degenerate than another: one rambling
answer out of 32 moves the mean repetition by a few tenths of a percent. Every variant answers the
same held-out prompts, so the comparison is paired: the bootstrap resamples prompts (scipy's
``bootstrap`` with ``paired=True``, percentile intervals, seeded from the job's seed), and a variant
counts as *more degenerate* than the prompted base model only when the interval of the difference
lies wholly above zero, for repetition (mean) or base perplexity (median).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# What a variant is compared with: the base model told to play the persona, i.e. the persona
# without any training. A trained model should be no more degenerate than it.
REFERENCE_VARIANT = "prompted"
RESAMPLES = 2000
# (measure in the per-answer rows, statistic over answers)
MEASURES: tuple[tuple[str, str], ...] = (("repetition", "mean"), ("base_perplexity", "median"))
_STATISTICS: dict[str, Callable[..., Any]] = {"mean": np.mean, "median": np.median}
# A summary or difference with no answers to compute it from.
_NO_ANSWERS = {"value": math.nan, "low": math.nan, "high": math.nan, "n": 0}


def _interval(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., Any], seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the (paired) samples."""
    from scipy.stats import bootstrap

    if len(samples[0]) < 2:
        return math.nan, math.nan
    result = bootstrap(
        samples,
        statistic,
        paired=len(samples) > 1,
        vectorized=True,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summary_interval(values: Sequence[float], how: str, seed: int) -> dict[str, float]:
    """The ``how`` ("mean" or "median") of ``values`` (NaNs dropped) with its 95 % interval."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return dict(_NO_ANSWERS)
    statistic = _STATISTICS[how]
    low, high = _interval((finite,), lambda x, axis: statistic(x, axis=axis), seed)
    return {"value": float(statistic(finite)), "low": low, "high": high, "n": int(finite.size)}


def paired_difference(
    variant: dict[int, float], reference: dict[int, float], how: str, seed: int
) -> dict[str, float]:
    """``how``(variant) - ``how``(reference) over the prompts both answered (keyed by prompt index),
    with a paired 95 % interval; prompts where either value is NaN (an empty answer) are dropped."""
    shared = sorted(i for i in variant.keys() & reference.keys() if not math.isnan(variant[i] + reference[i]))
    x = np.array([variant[i] for i in shared], dtype=float)
    y = np.array([reference[i] for i in shared], dtype=float)
    if not shared:
        return dict(_NO_ANSWERS)
    statistic = _STATISTICS[how]

    def difference(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return statistic(a, axis=axis) - statistic(b, axis=axis)

    low, high = _interval((x, y), difference, seed)
    return {"value": float(statistic(x) - statistic(y)), "low": low, "high": high, "n": len(shared)}


def compare_with_reference(rows: list[dict[str, Any]], seed: int) -> dict[str, dict[str, Any]]:
    """For every variant but the reference: the paired differences of each measure against the
    prompted base model, and ``more_degenerate`` (some difference's interval lies above zero).
    ``rows`` are the per-answer quality rows (method, prompt_index, repetition, base_perplexity)."""
    by_method: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        measures = by_method.setdefault(row["method"], {name: {} for name, _ in MEASURES})
        for name, _ in MEASURES:
            measures[name][row["prompt_index"]] = row[name]
    if REFERENCE_VARIANT not in by_method:
        return {}
    reference = by_method[REFERENCE_VARIANT]
    comparison = {}
    for method, measures in by_method.items():
        if method == REFERENCE_VARIANT:
            continue
        differences = {
            name: paired_difference(measures[name], reference[name], how, seed) for name, how in MEASURES
        }
        comparison[method] = {
            "differences": differences,
            "more_degenerate": any(d["low"] > 0 for d in differences.values()),
        }
    return comparison
