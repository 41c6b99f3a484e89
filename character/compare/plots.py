"""One bar chart per metric: personas along the axis, a bar per model."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from character.compare.table import metric_columns, pivot
from character.evaluation.report_files import grouped_bars


def plot_name(metric: str) -> str:
    """A file name for a metric: ``eval/spearman/before ~ after (like)`` -> ``eval__spearman__...png``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", metric.replace("/", "__")).strip("_") + ".png"


def write_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """A bar chart per metric column of ``frame``, into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in metric_columns(frame):
        table = pivot(frame, metric)
        path = out_dir / plot_name(metric)
        grouped_bars(
            path,
            [str(persona) for persona in table.index],
            {str(model): table[model].tolist() for model in table.columns},
            title=metric,
            ylabel="",
            legend_title="model",
        )
        paths.append(path)
    return paths
