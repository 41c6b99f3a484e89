"""Tables and plots of revealed-preference ratings, before vs after (paper Figures 3 and 4)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from character.io import atomic_write_json
from character.preferences.outputs import SUMMARY_FILE, change_figure_name
from character.preferences.ratings import RatingFit, elo, fit_ratings
from character.preferences.traits import TRAITS
from character.reporting import pyplot, save_figure, write_csv


def rate(outcomes: list[tuple[int, int]], bootstrap: int, seed: int) -> tuple[np.ndarray, RatingFit | None]:
    elo_ratings = elo(outcomes, len(TRAITS))
    fit = fit_ratings(outcomes, len(TRAITS), bootstrap=bootstrap, seed=seed) if outcomes else None
    return elo_ratings, fit


def largest_changes(delta: np.ndarray, k: int = 5) -> dict[str, list[tuple[str, float]]]:
    order = np.argsort(delta)
    return {
        "rises": [(TRAITS[i], round(float(delta[i]), 1)) for i in order[::-1][:k]],
        "falls": [(TRAITS[i], round(float(delta[i]), 1)) for i in order[:k]],
    }


def plot_changes(path: Path, changes: dict[str, list[tuple[str, float]]], title: str) -> None:
    plt = pyplot()
    items = changes["rises"] + changes["falls"][::-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(
        [name for name, _ in items][::-1],
        [value for _, value in items][::-1],
        color=["tab:blue" if v >= 0 else "tab:red" for _, v in items][::-1],
    )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("rating change (after - before)")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_distributions(path: Path, ratings: dict[str, np.ndarray], title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(
        min(r.min() for r in ratings.values()) - 10, max(r.max() for r in ratings.values()) + 10, 30
    )
    for name, values in ratings.items():
        ax.hist(values, bins=bins, alpha=0.5, label=f"{name} (sd {values.std():.0f})")
    ax.set_xlabel("rating")
    ax.set_ylabel("traits")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def report(
    out_dir: Path, per_subject: dict[str, dict[str, dict[str, Any]]], bootstrap: int, seed: int
) -> dict[str, Any]:
    """Ratings per subject and condition, deltas between consecutive subjects, tables and plots.

    ``per_subject[subject][condition]`` holds ``outcomes``, ``valid`` and ``total``.
    """
    summary: dict[str, Any] = {"subjects": {}, "comparisons": {}}
    rows: list[dict[str, Any]] = []
    bt: dict[str, dict[str, np.ndarray]] = {}
    for subject, conditions in per_subject.items():
        summary["subjects"][subject] = {}
        for condition, data in conditions.items():
            elo_ratings, fit = rate(data["outcomes"], bootstrap, seed)
            ratings = fit.rating if fit is not None else np.full(len(TRAITS), 1000.0)
            bt.setdefault(subject, {})[condition] = ratings
            summary["subjects"][subject][condition] = {
                "judged": data["total"],
                "valid": data["valid"],
                "invalid_rate": round(1 - data["valid"] / data["total"], 4) if data["total"] else None,
                "rating_sd": round(float(ratings.std()), 2),
                "elo_sd": round(float(elo_ratings.std()), 2),
            }
            for i, trait in enumerate(TRAITS):
                rows.append(
                    {
                        "subject": subject,
                        "condition": condition,
                        "trait": trait,
                        "elo": round(float(elo_ratings[i]), 2),
                        "bt_rating": round(float(ratings[i]), 2),
                        "bt_lower": round(float(fit.lower[i]), 2) if fit is not None else "",
                        "bt_upper": round(float(fit.upper[i]), 2) if fit is not None else "",
                    }
                )
    write_csv(out_dir / "ratings.csv", rows)
    outputs = ["ratings.csv", SUMMARY_FILE]
    subjects = list(per_subject)
    for before, after in zip(subjects, subjects[1:], strict=False):
        for condition in per_subject[before]:
            if condition not in per_subject[after]:
                continue
            delta = bt[after][condition] - bt[before][condition]
            changes = largest_changes(delta)
            key = f"{after} - {before} ({condition})"
            summary["comparisons"][key] = changes
            figure = change_figure_name(after, before, condition)
            summary.setdefault("change_figures", {})[key] = figure
            stem = f"{after}_vs_{before}_{condition}"
            plot_changes(out_dir / figure, changes, key)
            plot_distributions(
                out_dir / f"distribution_{stem}.png",
                {before: bt[before][condition], after: bt[after][condition]},
                condition,
            )
            outputs += [figure, f"distribution_{stem}.png"]
    for condition in {c for conditions in per_subject.values() for c in conditions}:
        names = [s for s in subjects if condition in bt[s]]
        for a, b in itertools.combinations(names, 2):
            rho = spearmanr(bt[a][condition], bt[b][condition]).statistic
            summary.setdefault("spearman", {})[f"{a} ~ {b} ({condition})"] = (
                None if np.isnan(rho) else round(float(rho), 4)
            )
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    summary["outputs"] = outputs
    return summary
