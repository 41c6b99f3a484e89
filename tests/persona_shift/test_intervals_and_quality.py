"""Wilson intervals against the closed form, and the quality measures on hand-checked texts."""

from __future__ import annotations

import math

import pytest

from character.persona_shift.intervals import proportion
from character.persona_shift.quality import perplexity, repetition_rate, word_count


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval written out (independent of scipy)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (41, 48), (1, 200)])
def test_proportion_matches_the_wilson_formula(k: int, n: int) -> None:
    result = proportion(k, n)
    low, high = wilson(k, n)
    assert result.rate == pytest.approx(k / n)
    assert result.low == pytest.approx(max(low, 0.0), abs=1e-9)
    assert result.high == pytest.approx(min(high, 1.0), abs=1e-9)


def test_nothing_measured_is_nan_not_zero() -> None:
    assert math.isnan(proportion(0, 0).rate)


def test_repetition_rate_counts_repeated_four_grams() -> None:
    assert repetition_rate("the cat sat on the mat today") == 0.0
    # 8 words -> 5 four-grams (abcd bcda cdab dabc abcd): only the last repeats an earlier one
    assert repetition_rate("a b c d a b c d") == pytest.approx(1 / 5)
    loop = " ".join(["a topic of conversation"] * 10)
    assert repetition_rate(loop) > 0.85
    assert repetition_rate("too short") == 0.0


def test_perplexity_and_length() -> None:
    assert perplexity([math.log(0.5)] * 4) == pytest.approx(2.0)
    assert math.isnan(perplexity([]))
    assert word_count("Oh, great - another question!") == 4
