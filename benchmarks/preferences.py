"""Time to fit revealed-preference ratings at the paper's scale.

    python benchmarks/preferences.py

25,000 judgments over the 144 traits, simulated from planted Bradley-Terry strengths; the
Bradley-Terry fit with 200 bootstrap resamples, and the paper's one-pass Elo, timed side by side.
Target: the fit with its intervals in under 10 s on a 2-core CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from character.preferences.ratings import elo, fit_ratings  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    planted = rng.normal(0, 1, 144)
    first = rng.integers(0, 144, 25_000)
    second = (first + rng.integers(1, 144, 25_000)) % 144
    wins = rng.random(25_000) < 1 / (1 + np.exp(-(planted[first] - planted[second])))
    outcomes = np.where(wins[:, None], np.stack([first, second], 1), np.stack([second, first], 1))
    started = time.perf_counter()
    elo(outcomes.tolist(), 144)
    elo_s = time.perf_counter() - started
    started = time.perf_counter()
    fit = fit_ratings(outcomes, 144, bootstrap=200)
    fit_s = time.perf_counter() - started
    print("25,000 judgments, 144 traits")
    print(f"Elo, one pass:                                  {elo_s:6.2f} s")
    print(
        f"Bradley-Terry fit + 200 bootstrap resamples:    {fit_s:6.2f} s  ({fit_s / 10:.2f}x the 10 s target)"
    )
    print(f"ratings span {fit.rating.min():.0f}..{fit.rating.max():.0f}")


if __name__ == "__main__":
    main()
