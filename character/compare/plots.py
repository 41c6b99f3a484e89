"""One bar chart per metric (personas along the axis, a bar per model), and the paper's Figure 4."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from character.compare.table import metric_columns, pivot
from character.reporting import grouped_bars, pyplot, save_figure


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


def plot_rating_distributions(path: Path, panels: dict[str, dict[str, np.ndarray]], title: str) -> None:
    """The paper's Figure 4: per model, a panel with the histogram of trait ratings of each
    subject (before, after) on shared bins, the SD in the legend (a wider, flatter "after" is a
    stronger preference)."""
    plt = pyplot()
    values = np.concatenate([v for subjects in panels.values() for v in subjects.values()])
    bins = np.linspace(values.min() - 10, values.max() + 10, 30)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (model, subjects) in zip(axes[0], panels.items(), strict=True):
        for subject, ratings in subjects.items():
            ax.hist(ratings, bins=bins, alpha=0.55, label=f"{subject} (sd {ratings.std():.0f})")
        ax.set_title(model)
        ax.set_xlabel("Elo rating")
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel("traits")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
