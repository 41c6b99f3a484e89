"""The paper's results views across a sweep, from the runs' recorded judgments.

- revealed preferences rated by seeded mean Elo beside the runs' Bradley-Terry ratings, with the
  largest rises and falls per run (Figure 3) and the rating distributions per model (Figure 4);
- the Spearman correlation of trait ratings across models, before and after (§3.1: 0.44 -> 0.87);
- coherence averaged over personas per model and method pair, ± SE over personas (Table 2);
- a link to the sweep's robustness report, macro-F1 per method and split (Figure 5).

Written under ``<out_dir>/views/`` and appended to ``comparison.md``; a view whose inputs no run
has (e.g. a sweep without the eval stage) is left out.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from character.compare import coherence, spearman
from character.compare.plots import plot_rating_distributions
from character.compare.preferences import RunPreferences, before_after, load_preferences, rating_rows
from character.compare.records import RunRecord
from character.compare.robustness import robustness_section
from character.compare.run_files import SUBJECTS, run_dir_of
from character.preferences.report import largest_changes, plot_changes
from character.reporting import markdown_table, write_csv

log = logging.getLogger("character.compare")
VIEWS = "views"


def _name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(parts)).strip("_")


def _fmt(value: Any, digits: int = 3) -> Any:
    """Numbers for markdown: rounded, NaN as n/a (tabulate would print "nan")."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else round(value, digits)
    return value


def _table(rows: list[dict[str, Any]]) -> str:
    return markdown_table([{k: _fmt(v) for k, v in row.items()} for row in rows], floatfmt="")


def write_views(records: list[RunRecord], cfg: Any, out_dir: Path) -> tuple[list[str], list[Path]]:
    """Markdown lines to append to the comparison, and the files written."""
    runs = [(record, run_dir) for record in records if (run_dir := run_dir_of(record)) is not None]
    missing = len(records) - len(runs)
    if missing:
        log.info("compare: %d run(s) have no run directory here; the results views leave them out", missing)
    views_dir = out_dir / VIEWS
    lines: list[str] = []
    files: list[Path] = []
    prefs = load_preferences(runs, cfg.elo)
    if prefs:
        views_dir.mkdir(parents=True, exist_ok=True)
        lines += _preferences(prefs, cfg.elo, views_dir, out_dir, files)
        lines += _spearman(prefs, views_dir, files)
    coherence_rows = coherence.persona_rows(runs)
    if coherence_rows:
        views_dir.mkdir(parents=True, exist_ok=True)
        lines += _coherence(coherence_rows, views_dir, files)
    lines += _blank_before(robustness_section([d for _, d in runs], cfg.robustness_dir, out_dir))
    if missing and lines:
        lines += ["", f"({missing} run(s) read without a run directory here are not in the views above.)"]
    return lines, files


def _blank_before(lines: list[str]) -> list[str]:
    return ["", *lines] if lines else []


def _preferences(
    prefs: list[RunPreferences], elo: Any, views_dir: Path, out_dir: Path, files: list[Path]
) -> list[str]:
    """Figure 3 per run and condition, Figure 4 per persona and condition, ratings CSV, summary."""
    write_csv(views_dir / "elo_ratings.csv", rating_rows(prefs))
    files.append(views_dir / "elo_ratings.csv")
    rows = []
    for p in prefs:
        for condition in p.conditions():
            pair = before_after(p, condition)
            row: dict[str, Any] = {"persona": p.persona, "model": p.model, "condition": condition}
            for subject in SUBJECTS:
                valid, judged = p.valid.get((subject, condition), (0, 0))
                row[f"verdicts {subject}"] = f"{valid}/{judged}"
                ratings = p.elo.get((subject, condition))
                row[f"Elo SD {subject}"] = float(ratings.std()) if ratings is not None else float("nan")
            if pair is not None:
                changes = largest_changes(pair[1] - pair[0])
                path = views_dir / "figure3" / f"{_name(p.model, p.persona, condition)}.png"
                path.parent.mkdir(exist_ok=True)
                plot_changes(path, changes, f"{p.model} / {p.persona} ({condition}): Elo after - before")
                files.append(path)
                (rise, up), (fall, down) = changes["rises"][0], changes["falls"][0]
                row |= {"largest rise": f"{rise} ({up:+.1f})", "largest fall": f"{fall} ({down:+.1f})"}
                row["figure 3"] = f"[png]({path.relative_to(out_dir)})"
            rows.append(row)
    figure4 = []
    for persona in sorted({p.persona for p in prefs}):
        for condition in dict.fromkeys(c for p in prefs if p.persona == persona for c in p.conditions()):
            panels = {
                p.model: {s: p.elo[(s, condition)] for s in SUBJECTS if (s, condition) in p.elo}
                for p in sorted(prefs, key=lambda p: p.model)
                if p.persona == persona and any((s, condition) in p.elo for s in SUBJECTS)
            }
            path = views_dir / "figure4" / f"{_name(persona, condition)}.png"
            path.parent.mkdir(exist_ok=True)
            plot_rating_distributions(path, panels, f"{persona} ({condition}): trait Elo before vs after")
            files.append(path)
            figure4.append(f"[{persona} ({condition})]({path.relative_to(out_dir)})")
    return [
        "",
        "## Revealed preferences: Elo (paper Figures 3-4)",
        "",
        f"Elo: the mean of {elo.passes} passes over each run's valid verdicts, each pass from "
        f"{elo.start:g} with K = {elo.k:g} in its own random order (seed {elo.seed}); ratings of every "
        f"trait, with the runs' Bradley-Terry ratings beside them, in `{VIEWS}/elo_ratings.csv`. "
        "Figure 3: the five largest rises and falls per run; Figure 4: rating distributions per "
        "model: " + ", ".join(figure4) + ".",
        "",
        _table(rows),
    ]


def _spearman(prefs: list[RunPreferences], views_dir: Path, files: list[Path]) -> list[str]:
    header = ["", "## Spearman correlation of trait ratings across models (paper §3.1, Figure 4)", ""]
    rows = spearman.spearman_rows(prefs)
    if not rows:
        return header + ["Needs at least two models that rated the same persona; these runs have none."]
    means = spearman.mean_rows(rows)
    write_csv(views_dir / "spearman.csv", rows)
    write_csv(views_dir / "spearman_mean.csv", means)
    files += [views_dir / "spearman.csv", views_dir / "spearman_mean.csv"]
    return header + [
        "Per persona and condition, rho of two models' trait ratings (scipy.stats.spearmanr), before "
        "and after training; the mean is over every model pair and persona with a defined rho "
        "(`*_n` of them). A constant rating vector has no ranking: its rho is n/a, with a note. "
        f"The paper: 0.44 before, 0.87 after. Tables: `{VIEWS}/spearman.csv`, `{VIEWS}/spearman_mean.csv`.",
        "",
        _table(means),
        "",
        _table(rows),
    ]


def _coherence(rows: list[dict[str, Any]], views_dir: Path, files: list[Path]) -> list[str]:
    averaged = coherence.averaged_rows(rows)
    write_csv(views_dir / "coherence_by_persona.csv", rows)
    write_csv(views_dir / "coherence.csv", averaged)
    files += [views_dir / "coherence_by_persona.csv", views_dir / "coherence.csv"]
    left_out = [r for r in averaged if r["left_out"]]
    notes = [
        f"- {r['model']}, {r['pair']} ({r['judge']}): no kept comparison for {r['left_out']}"
        for r in left_out
    ]
    return [
        "",
        "## Coherence averaged over personas (paper Table 2)",
        "",
        "Win rate % of the first method, the mean of the per-persona win rates ± SE over personas "
        "(sample SD of the per-persona win rates / √n, n personas); per-persona counts in "
        f"`{VIEWS}/coherence_by_persona.csv`, the averages in `{VIEWS}/coherence.csv`.",
        "",
        _table(coherence.table2(averaged)),
        *([""] + notes if notes else []),
    ]
