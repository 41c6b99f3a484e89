"""Binomial proportions with 95 % intervals (Wilson score, through scipy).

Every rate this package reports is a fraction of independent yes/no outcomes (a response judged in
persona, a pair ranked the right way), so one interval rule serves them all. Wilson's interval keeps
its coverage near 95 % at small n and at rates near 0 or 1, where the normal approximation fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``n``, the rate, and its 95 % Wilson interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def proportion(successes: int, n: int, confidence: float = 0.95) -> Proportion:
    """The rate ``successes / n`` with its Wilson interval; n = 0 gives NaN (nothing measured)."""
    if n == 0:
        nan = float("nan")
        return Proportion(0, 0, nan, nan, nan)
    from scipy.stats import binomtest

    interval = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(int(successes), int(n), successes / n, float(interval.low), float(interval.high))
