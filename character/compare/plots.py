"""One bar chart per metric: personas along the axis, a bar per model."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from character.compare.table import metric_columns, pivot


def plot_name(metric: str) -> str:
    """A file name for a metric: ``eval/spearman/before ~ after (like)`` -> ``eval__spearman__...png``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", metric.replace("/", "__")).strip("_") + ".png"


def write_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters and CI
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in metric_columns(frame):
        table = pivot(frame, metric)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(table) * max(1, len(table.columns)) + 1.5), 3.5))
        table.plot.bar(ax=ax, rot=30, width=0.8)
        ax.set_title(metric)
        ax.set_xlabel("")
        ax.legend(title="model", fontsize="small")
        fig.tight_layout()
        path = out_dir / plot_name(metric)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
