"""Spearman correlation of trait ratings across models, before and after training (paper Figure 4).

The paper: the average Spearman correlation of the Elo rankings of the three base models is 0.44,
and 0.87 after training them all on one constitution, so the models converge on one persona.
Here, for every persona and condition, each pair of models that both rated it gets rho of their
two rating vectors (over the 144 traits) per subject (before, after), for the seeded mean Elo and
for the runs' Bradley-Terry ratings; the mean is over every pair and persona with a defined rho.

A constant vector (every trait tied, e.g. no valid verdict, or a judge that always names the same
position) has no ranking to correlate: its rho is NaN with a note saying which, not an error.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from character.compare.preferences import RunPreferences
from character.compare.run_files import SUBJECTS

KINDS = ("elo", "bt")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's rho, or NaN when either vector is constant or has a missing value."""
    if np.isnan(a).any() or np.isnan(b).any() or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _why_nan(ratings: dict[str, np.ndarray | None]) -> list[str]:
    notes = []
    for name, values in ratings.items():
        if values is None:
            notes.append(f"{name}: not rated")
        elif np.isnan(values).any():
            notes.append(f"{name}: ratings missing")
        elif np.ptp(values) == 0:
            notes.append(f"{name}: constant ratings (all traits tied)")
    return notes


def spearman_rows(runs: list[RunPreferences]) -> list[dict[str, Any]]:
    """A row per (persona, condition, model pair, rating kind): rho before and after, and a note
    naming any vector that left rho undefined."""
    rows = []
    by_persona: dict[str, list[RunPreferences]] = {}
    for prefs in runs:
        by_persona.setdefault(prefs.persona, []).append(prefs)
    for persona, group in sorted(by_persona.items()):
        group = sorted(group, key=lambda p: p.model)
        conditions = list(dict.fromkeys(c for prefs in group for c in prefs.conditions()))
        for condition, (a, b), kind in itertools.product(conditions, itertools.combinations(group, 2), KINDS):
            row: dict[str, Any] = {
                "persona": persona,
                "condition": condition,
                "model_a": a.model,
                "model_b": b.model,
                "ratings": kind,
            }
            notes = []
            for subject in SUBJECTS:
                va, vb = (p.ratings(kind).get((subject, condition)) for p in (a, b))
                rho = float("nan") if va is None or vb is None else spearman(va, vb)
                row[subject] = rho
                if np.isnan(rho):
                    notes += _why_nan({f"{a.model} {subject}": va, f"{b.model} {subject}": vb})
            row["note"] = "; ".join(notes)
            rows.append(row)
    return rows


def mean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (condition, rating kind): the mean rho over pairs and personas, before and after, and
    how many rhos each mean is over (NaNs are left out and counted)."""
    means = []
    for condition, kind in dict.fromkeys((r["condition"], r["ratings"]) for r in rows):
        picked = [r for r in rows if r["condition"] == condition and r["ratings"] == kind]
        mean: dict[str, Any] = {"condition": condition, "ratings": kind}
        for subject in SUBJECTS:
            values = [r[subject] for r in picked if not np.isnan(r[subject])]
            mean[subject] = float(np.mean(values)) if values else float("nan")
            mean[f"{subject}_n"] = len(values)
        mean["pairs"] = len(picked)
        means.append(mean)
    return means
