"""Coherence averaged over personas, per model and method pair (paper Table 2, and Tables 6-7).

Each run's win rate of the first method is recounted from its recorded verdicts (both orders,
order-consistent comparisons only, as the coherence stage counts them). The table's cell for a
model and pair is the mean of the per-persona win rates, each persona weighing the same whatever
its number of kept comparisons; its SE is over personas: the sample standard deviation of the
per-persona win rates / sqrt(number of personas) (``scipy.stats.sem``, ddof 1), so it says how much
the average would move with other personas, not how precise one persona's rate is. A persona
whose judge kept no comparison has no win rate and is left out of the mean (and named).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import sem

from character.compare.records import RunRecord
from character.compare.run_files import coherence_win_rates


def persona_rows(runs: list[tuple[RunRecord, Path]]) -> list[dict[str, Any]]:
    """A row per (model, persona, judge, pair): the persona's own win rate and its counts."""
    rows = []
    for record, run_dir in runs:
        for (judge, pair), rate in coherence_win_rates(run_dir).items():
            rows.append(
                {
                    "model": record.model,
                    "persona": record.persona,
                    "judge": judge,
                    "pair": pair,
                    "win_rate": rate.rate,
                    "wins": rate.wins,
                    "kept": rate.kept,
                    "judged": rate.total,
                }
            )
    return sorted(rows, key=lambda r: (r["judge"], r["pair"], r["model"], r["persona"]))


def averaged_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per (judge, pair, model): mean win rate over personas, its SE over personas, how many
    personas it averages, and the personas left out for having no kept comparison."""
    averaged = []
    for judge, pair, model in dict.fromkeys((r["judge"], r["pair"], r["model"]) for r in rows):
        picked = [r for r in rows if (r["judge"], r["pair"], r["model"]) == (judge, pair, model)]
        rates = [r["win_rate"] for r in picked if not math.isnan(r["win_rate"])]
        averaged.append(
            {
                "judge": judge,
                "pair": pair,
                "model": model,
                "win_rate": float(np.mean(rates)) if rates else float("nan"),
                "se": float(sem(rates)) if len(rates) > 1 else float("nan"),
                "personas": len(rates),
                "left_out": ", ".join(r["persona"] for r in picked if math.isnan(r["win_rate"])),
            }
        )
    return averaged


def table2(averaged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's layout: a row per (judge, pair), a column per model, "win rate % ± SE (n)"."""
    models = sorted({r["model"] for r in averaged})
    table = []
    for judge, pair in dict.fromkeys((r["judge"], r["pair"]) for r in averaged):
        row: dict[str, Any] = {"judge": judge, "pair": pair}
        for model in models:
            match = [r for r in averaged if (r["judge"], r["pair"], r["model"]) == (judge, pair, model)]
            row[model] = _cell(match[0]) if match else ""
        table.append(row)
    return table


def _cell(row: dict[str, Any]) -> str:
    if math.isnan(row["win_rate"]):
        return "n/a (no kept comparison)"
    se = "n/a" if math.isnan(row["se"]) else f"{100 * row['se']:.2f}"
    return f"{100 * row['win_rate']:.1f} ± {se} (n={row['personas']})"
