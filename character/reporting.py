"""Tables (CSV and markdown) and grouped bar plots shared by every report: each evaluation's,
the job's ``report.md`` and ``launchers.compare``'s.

Every evaluation ends in the same three artifacts: a CSV for analysis, a markdown table for the
log and docs, and a PNG plot. Writing them in one place keeps the formats alike across reports.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

from character.io import atomic_write_bytes, atomic_write_text


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def markdown_table(rows: Sequence[Mapping[str, Any]], floatfmt: str = ".3f") -> str:
    from tabulate import tabulate

    cells = [list(row.values()) for row in rows]
    return tabulate(cells, headers=list(rows[0]), tablefmt="github", floatfmt=floatfmt)


def write_tables(stem: Path, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``<stem>.csv`` and ``<stem>.md``; returns their file names."""
    write_csv(stem.with_suffix(".csv"), rows)
    atomic_write_text(stem.with_suffix(".md"), markdown_table(rows) + "\n")
    return [stem.with_suffix(".csv").name, stem.with_suffix(".md").name]


def grouped_bars(
    path: Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    errors: Mapping[str, Sequence[float]] | None = None,
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    legend_title: str | None = None,
) -> None:
    """One group of bars per category, one bar per series, with optional error bars (e.g. ± SE).

    The legend shows when there are several series, or always when ``legend_title`` names them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(categories) + 2), 4))
    for i, (name, values) in enumerate(series.items()):
        offsets = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
        errs = None
        if errors is not None and name in errors:
            errs = [0.0 if math.isnan(e) else e for e in errors[name]]
        heights = [0.0 if math.isnan(v) else v for v in values]
        ax.bar(offsets, heights, width, yerr=errs, capsize=3, label=name)
    ax.set_xticks(range(len(categories)), list(categories), rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if len(series) > 1 or legend_title is not None:
        ax.legend(title=legend_title, fontsize="small")
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
