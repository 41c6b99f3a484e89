"""Ratings: Elo against a hand computation; Bradley-Terry recovery and interval coverage on
judgments simulated from planted strengths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from character.preferences.ratings import ELO_SCALE, bradley_terry, elo, fit_ratings, mean_elo


def test_elo_matches_a_hand_computed_sequence() -> None:
    # items 0, 1, 2; outcomes (winner, loser) in order
    ratings = elo([(0, 1), (0, 1), (2, 0)], 3)
    # 1) equal ratings: expected 0.5, 0 -> 1016, 1 -> 984
    # 2) 0 (1016) beats 1 (984): expected = 1 / (1 + 10^(-32/400)) = 0.545922; gain 32 x 0.454078
    gain = 32 * (1 - 1 / (1 + 10 ** (-32 / 400)))
    r0, r1 = 1016 + gain, 984 - gain
    # 3) 2 (1000) beats 0 (r0): expected for 2 = 1 / (1 + 10^((r0 - 1000) / 400))
    gain3 = 32 * (1 - 1 / (1 + 10 ** ((r0 - 1000) / 400)))
    assert ratings == pytest.approx([r0 - gain3, r1, 1000 + gain3], abs=1e-9)
    assert round(gain, 4) == 14.5305  # 32 x (1 - 1 / (1 + 10^-0.08)) by hand
    assert elo([(1, 0), (0, 1)], 2).tolist() != elo([(0, 1), (1, 0)], 2).tolist()  # order matters for Elo


def test_mean_elo_is_the_mean_of_seeded_single_passes() -> None:
    outcomes = [(0, 1), (0, 1), (2, 0), (1, 2), (0, 2), (3, 1)]
    rng = np.random.default_rng(7)  # the documented draw: one permutation per pass, in pass order
    passes = [elo([outcomes[i] for i in rng.permutation(len(outcomes))], 4) for _ in range(5)]
    assert mean_elo(outcomes, 4, passes=5, seed=7) == pytest.approx(np.mean(passes, axis=0), abs=1e-9)
    # the same hand-computed first step as above, whatever the order: 2 items, one outcome
    assert mean_elo([(1, 0)], 2, passes=3).tolist() == [984.0, 1016.0]
    again = mean_elo(outcomes, 4, passes=50, seed=1)
    assert again.tolist() == mean_elo(outcomes, 4, passes=50, seed=1).tolist()  # seeded
    assert again.mean() == pytest.approx(1000.0) and np.argmax(again) == 0  # 0 won 3 of 4
    assert mean_elo([], 3, k=16, start=1500).tolist() == [1500.0] * 3
    with pytest.raises(ValueError, match="passes"):
        mean_elo(outcomes, 4, passes=0)


def simulate(strengths: np.ndarray, n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(strengths), n)
    second = (first + rng.integers(1, len(strengths), n)) % len(strengths)  # a different item
    p_first = 1 / (1 + np.exp(-(strengths[first] - strengths[second])))
    first_wins = rng.random(n) < p_first
    return [
        (int(a), int(b)) if w else (int(b), int(a)) for a, b, w in zip(first, second, first_wins, strict=True)
    ]


def test_bradley_terry_recovers_planted_strengths_with_calibrated_intervals() -> None:
    rng = np.random.default_rng(0)
    planted = rng.normal(0, 1, 144)
    outcomes = simulate(planted, 25_000, seed=1)
    fit = fit_ratings(outcomes, 144, bootstrap=200, seed=2)
    rho = spearmanr(fit.rating, planted).statistic
    assert rho >= 0.95, rho
    truth = 1000 + ELO_SCALE * (planted - planted.mean())
    coverage = np.mean((fit.lower <= truth) & (truth <= fit.upper))
    assert 0.88 <= coverage <= 1.0, coverage  # nominal 0.95
    assert np.all(fit.lower <= fit.rating) and np.all(fit.rating <= fit.upper)


def test_bradley_terry_is_order_independent() -> None:
    outcomes = np.array(simulate(np.linspace(-1, 1, 10), 2000, seed=3))
    shuffled = outcomes[np.random.default_rng(4).permutation(len(outcomes))]
    a = bradley_terry(outcomes[:, 0], outcomes[:, 1], 10)
    b = bradley_terry(shuffled[:, 0], shuffled[:, 1], 10)
    assert np.allclose(a, b, atol=1e-5)
    assert abs(a.mean()) < 1e-9
