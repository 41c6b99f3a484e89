"""Ratings from pairwise outcomes: the paper's Elo, and an order-independent Bradley-Terry fit.

An outcome ``(winner, loser)`` says the judge found the winner's trait expressed when the assistant
was offered both. Elo (start 1000, K = 32, one pass in data order) reproduces the paper but depends
on the order of the data; ``mean_elo`` averages many passes over seeded random orders, which
removes that dependence while staying Elo; the Bradley-Terry maximum-likelihood fit does not
depend on order at all, and bootstrap resampling of the outcomes gives confidence intervals.
Bradley-Terry strengths are reported on the Elo scale (400 / ln 10 per unit of log-odds, mean
1000) so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

ELO_SCALE = 400.0 / np.log(10.0)


def elo(
    outcomes: Sequence[tuple[int, int]], n_items: int, k: float = 32.0, start: float = 1000.0
) -> np.ndarray:
    """One pass of Elo updates over ``(winner, loser)`` index pairs, in the given order."""
    ratings = np.full(n_items, start, dtype=float)
    for winner, loser in outcomes:
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[loser] - ratings[winner]) / 400.0))
        ratings[winner] += k * (1.0 - expected)
        ratings[loser] -= k * (1.0 - expected)
    return ratings


def mean_elo(
    outcomes: Sequence[tuple[int, int]],
    n_items: int,
    k: float = 32.0,
    start: float = 1000.0,
    passes: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Elo averaged over ``passes`` independent passes, each from ``start`` over the outcomes in
    its own random order (``numpy.random.default_rng(seed)``, one permutation per pass, drawn in
    pass order).

    Why: one Elo pass weighs late outcomes more than early ones, so the same judgments in another
    order give other ratings; the data order of a judgments file is an accident of sampling. The
    paper computes Elo "through numerous randomized pairings"; the mean over random orders is a
    rating of the judgments themselves, reproducible through the seed, and still on the Elo scale
    (every pass keeps the mean rating at ``start``). Pass ``p`` equals ``elo`` on the outcomes in
    permutation ``p``; all passes run together, one vectorised update per outcome position.
    """
    pairs = np.asarray(outcomes, dtype=np.int64).reshape(-1, 2)
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(len(pairs)) for _ in range(passes)], axis=1)  # (outcomes, passes)
    # flat positions into a (passes, n_items) table, one row per outcome position: one vectorised
    # update per position moves every pass at once
    offsets = np.arange(passes) * n_items
    winners, losers = pairs[orders, 0] + offsets, pairs[orders, 1] + offsets
    ratings = np.full(passes * n_items, start, dtype=float)
    for w, lo in zip(winners, losers, strict=True):
        rating_w, rating_l = ratings[w], ratings[lo]
        delta = k / (1.0 + 10.0 ** ((rating_w - rating_l) / 400.0))  # k * (1 - expected win)
        ratings[w] = rating_w + delta
        ratings[lo] = rating_l - delta
    return ratings.reshape(passes, n_items).mean(axis=0)


def _neg_log_likelihood(strengths: np.ndarray, winners: np.ndarray, losers: np.ndarray, l2: float):
    diff = strengths[winners] - strengths[losers]
    # -log sigmoid(diff) = log(1 + exp(-diff)), computed stably
    loss = np.logaddexp(0.0, -diff).sum() + 0.5 * l2 * np.dot(strengths, strengths)
    grad_diff = -1.0 / (1.0 + np.exp(diff))  # d/d diff of -log sigmoid(diff)
    grad = np.bincount(winners, grad_diff, len(strengths)) - np.bincount(losers, grad_diff, len(strengths))
    return loss, grad + l2 * strengths


def bradley_terry(
    winners: np.ndarray, losers: np.ndarray, n_items: int, l2: float = 1e-4, start: np.ndarray | None = None
) -> np.ndarray:
    """Maximum-likelihood log-strengths (mean 0). A tiny L2 term keeps items that never lost (or
    never won) finite; it barely moves the others."""
    x0 = np.zeros(n_items) if start is None else start
    result = minimize(_neg_log_likelihood, x0, args=(winners, losers, l2), jac=True, method="L-BFGS-B")
    return result.x - result.x.mean()


@dataclass
class RatingFit:
    """Bradley-Terry ratings on the Elo scale with bootstrap percentile intervals."""

    rating: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    comparisons: int


def fit_ratings(
    outcomes: Sequence[tuple[int, int]],
    n_items: int,
    bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> RatingFit:
    pairs = np.asarray(outcomes, dtype=np.int64).reshape(-1, 2)
    winners, losers = pairs[:, 0], pairs[:, 1]
    point = bradley_terry(winners, losers, n_items)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, n_items))
    for b in range(bootstrap):
        index = rng.integers(0, len(pairs), len(pairs))
        samples[b] = bradley_terry(winners[index], losers[index], n_items, start=point)
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(samples, [tail, 1.0 - tail], axis=0) if bootstrap else (point, point)
    to_elo = lambda s: 1000.0 + ELO_SCALE * s  # noqa: E731
    return RatingFit(to_elo(point), to_elo(lower), to_elo(upper), len(pairs))
