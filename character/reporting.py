"""Tables (CSV and markdown), figures and grouped bar plots shared by every report: each
evaluation's, the job's ``report.md`` and ``launchers.compare``'s.

Every evaluation ends in the same three artifacts: a CSV for analysis, a markdown table for the
log and docs, and a PNG plot. Writing them in one place keeps the formats alike across reports,
and every figure is written whole or not at all (``save_figure``), like every other artifact.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO, StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from character.io import atomic_write_bytes, atomic_write_text
from character.judging.check import RESULT_FILE

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class EvaluationOutputs:
    """Where an evaluation stage leaves its report material in its folder: ``<stem>.csv`` and
    ``<stem>.md`` (``write_tables``), ``<stem>.png`` and its judge's ``judge_check.json``. Named
    once for the stage that writes them and the report stage that reads them."""

    stem: str

    def tables(self, stage_dir: Path) -> Path:
        """The stem that ``write_tables`` completes with ``.csv`` and ``.md``."""
        return stage_dir / self.stem

    def markdown(self, stage_dir: Path) -> Path:
        return stage_dir / f"{self.stem}.md"

    def figure(self, stage_dir: Path) -> Path:
        return stage_dir / f"{self.stem}.png"

    def judge_check(self, stage_dir: Path) -> Path:
        return stage_dir / RESULT_FILE


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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (no display on a cluster node), imported
    on first use so that stages that draw nothing do not pay for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path, dpi: int = 120) -> None:
    """Write ``fig`` as PNG atomically (a crash leaves no half-written image) and close it."""
    buffer = BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


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
    plt = pyplot()
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
    save_figure(fig, path)
