"""The paired quality comparison: planted differences found, equal models not flagged, interval
coverage near 95 %, and NaN (empty) answers dropped from the pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from character.persona_shift.quality_comparison import (
    compare_with_reference,
    paired_difference,
    summary_interval,
)


def rows(method: str, repetition: list[float], perplexity: list[float]) -> list[dict]:
    return [
        {"method": method, "prompt_index": i, "repetition": r, "base_perplexity": p}
        for i, (r, p) in enumerate(zip(repetition, perplexity, strict=True))
    ]


def test_the_difference_is_the_statistic_of_the_paired_prompts() -> None:
    variant = {0: 7.0, 1: 9.0, 2: 30.0, 3: 8.0, 5: 6.0}
    reference = {0: 6.0, 1: 7.5, 2: 7.0, 3: 8.5, 4: 100.0}  # prompt 4 and 5 are not shared
    result = paired_difference(variant, reference, "median", seed=0)
    assert result["n"] == 4
    assert result["value"] == pytest.approx(np.median([7, 9, 30, 8]) - np.median([6, 7.5, 7, 8.5]))
    assert result["low"] <= result["value"] <= result["high"]


def test_a_planted_degeneration_is_flagged_and_an_equal_model_is_not() -> None:
    rng = np.random.default_rng(3)
    prompted = rng.lognormal(mean=2.0, sigma=0.3, size=32)
    degenerate = prompted * 1.6  # every answer 60 % more perplexing
    same = prompted * rng.lognormal(mean=0.0, sigma=0.05, size=32)
    zeros = [0.0] * 32
    result = compare_with_reference(
        rows("prompted", zeros, list(prompted))
        + rows("trained", zeros, list(degenerate))
        + rows("distilled", zeros, list(same)),
        seed=1,
    )
    assert set(result) == {"trained", "distilled"}
    assert result["trained"]["more_degenerate"]
    assert result["trained"]["differences"]["base_perplexity"]["low"] > 0
    assert not result["distilled"]["more_degenerate"]
    # identical repetition everywhere: a zero-width interval at zero, not NaN
    assert result["distilled"]["differences"]["repetition"] == {
        "value": 0.0,
        "low": 0.0,
        "high": 0.0,
        "n": 32,
    }


def test_repetition_alone_can_flag_a_model() -> None:
    flat = [7.0] * 20
    result = compare_with_reference(
        rows("prompted", [0.0] * 20, flat) + rows("trained", [0.3] * 10 + [0.2] * 10, flat), seed=0
    )
    assert result["trained"]["more_degenerate"]
    assert result["trained"]["differences"]["repetition"]["value"] == pytest.approx(0.25)


def test_the_paired_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    trials = 200
    for trial in range(trials):
        reference = rng.normal(0.0, 1.0, size=40)
        variant = reference + 0.3 + rng.normal(0.0, 0.5, size=40)  # true mean difference 0.3
        result = paired_difference(dict(enumerate(variant)), dict(enumerate(reference)), "mean", seed=trial)
        covered += result["low"] <= 0.3 <= result["high"]
    # percentile bootstrap at n=40 runs a little narrow; 200 trials give a binomial sd of ~1.6 %
    assert 0.87 <= covered / trials <= 0.99


def test_empty_answers_are_dropped_from_pairs_and_summaries() -> None:
    result = paired_difference({0: math.nan, 1: 8.0, 2: 9.0}, {0: 7.0, 1: 7.0, 2: math.nan}, "median", 0)
    assert result["n"] == 1 and result["value"] == pytest.approx(1.0)
    assert math.isnan(result["low"])  # one pair gives no interval
    summary = summary_interval([math.nan, 2.0, 4.0, 6.0], "median", seed=0)
    assert summary["n"] == 3 and summary["value"] == 4.0
    assert 2.0 <= summary["low"] <= 4.0 <= summary["high"] <= 6.0
    assert summary_interval([math.nan], "mean", seed=0)["n"] == 0


def test_without_a_prompted_model_there_is_nothing_to_compare() -> None:
    assert compare_with_reference(rows("trained", [0.0], [7.0]), seed=0) == {}
