"""Revealed preferences across a sweep: each run's trait ratings, before and after training.

Every run's recorded judgments are rated again here with the same seeded mean Elo
(``ratings.mean_elo``), so runs rated by different stage versions, or read from different
sources, are on one footing; the run's own Bradley-Terry ratings (``ratings.csv``) are read beside
them. Both are vectors over the 144 Appendix I traits in ``TRAITS`` order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from character.compare.records import RunRecord
from character.compare.run_files import SUBJECTS, bradley_terry_ratings, preference_outcomes
from character.preferences.ratings import mean_elo
from character.preferences.traits import TRAITS

log = logging.getLogger("character.compare")


@dataclass
class RunPreferences:
    """One run's ratings per (subject, condition), and how many verdicts each rests on."""

    model: str
    persona: str
    elo: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    bt: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    valid: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (valid, judged)

    def conditions(self) -> list[str]:
        return list(dict.fromkeys(condition for _, condition in self.elo))

    def ratings(self, kind: str) -> dict[tuple[str, str], np.ndarray]:
        return self.elo if kind == "elo" else self.bt


def load_preferences(runs: list[tuple[RunRecord, Path]], elo: Any) -> list[RunPreferences]:
    """Ratings of every run whose ``eval`` stage finished; ``elo`` holds k, start, passes, seed."""
    loaded = []
    for record, run_dir in runs:
        outcomes = preference_outcomes(run_dir)
        if not outcomes:
            continue
        prefs = RunPreferences(record.model, record.persona, bt=bradley_terry_ratings(run_dir))
        for key, (pairs, judged) in outcomes.items():
            prefs.elo[key] = mean_elo(
                pairs,
                len(TRAITS),
                k=float(elo.k),
                start=float(elo.start),
                passes=int(elo.passes),
                seed=int(elo.seed),
            )
            prefs.valid[key] = (len(pairs), judged)
        log.info(
            "compare: rated %s/%s (%s)", record.model, record.persona, ", ".join(map("/".join, outcomes))
        )
        loaded.append(prefs)
    return loaded


def before_after(prefs: RunPreferences, condition: str) -> tuple[np.ndarray, np.ndarray] | None:
    before, after = (prefs.elo.get((subject, condition)) for subject in SUBJECTS)
    return None if before is None or after is None else (before, after)


def rating_rows(runs: list[RunPreferences]) -> list[dict[str, Any]]:
    """Long rows for ``elo_ratings.csv``: persona, model, subject, condition, trait, elo, bt."""
    rows = []
    for prefs in runs:
        for (subject, condition), elo in prefs.elo.items():
            bt = prefs.bt.get((subject, condition))
            for i, trait in enumerate(TRAITS):
                rows.append(
                    {
                        "persona": prefs.persona,
                        "model": prefs.model,
                        "subject": subject,
                        "condition": condition,
                        "trait": trait,
                        "elo": round(float(elo[i]), 3),
                        "bt_rating": "" if bt is None or np.isnan(bt[i]) else float(bt[i]),
                    }
                )
    return rows
