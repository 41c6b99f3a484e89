"""Collect the runs, build the comparison, and write it: markdown, CSV, plots and the paper's views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from character.compare.local import read_local_runs
from character.compare.plots import write_plots
from character.compare.records import RunRecord, latest_per_job, latest_per_pair
from character.compare.table import comparison_frame, markdown_report
from character.compare.views import write_views
from character.compare.wandb_runs import read_offline_records, read_online_records
from character.errors import CharacterError
from character.io import atomic_write_text


@dataclass
class Comparison:
    frame: pd.DataFrame
    markdown: str
    files: list[Path]


def collect(cfg: Any) -> tuple[list[RunRecord], list[str]]:
    """Records from every source the config names, and a description of the sources."""
    if not (cfg.runs or cfg.wandb_offline or cfg.wandb_project):
        raise CharacterError(
            "no runs to compare: set runs=[<run dir or run root>, ...], wandb_offline=[<wandb dir>, ...] "
            "or wandb_project=<entity/project>."
        )
    records: list[RunRecord] = []
    sources: list[str] = []
    if cfg.runs:
        records += read_local_runs(list(cfg.runs))
        sources += [f"run directories {list(cfg.runs)}"]
    group = cfg.wandb_group
    if cfg.wandb_offline:
        records += read_offline_records(list(cfg.wandb_offline), group)
        sources += [f"offline W&B runs {list(cfg.wandb_offline)}" + (f" (group {group})" if group else "")]
    if cfg.wandb_project:
        records += read_online_records(cfg.wandb_project, cfg.wandb_entity, group)
        sources += [f"W&B project {cfg.wandb_project}" + (f" (group {group})" if group else "")]
    return latest_per_job(records), sources


def compare(cfg: Any) -> Comparison:
    records, sources = collect(cfg)
    frame = comparison_frame(records, list(cfg.metrics), counts=bool(cfg.counts))
    markdown = markdown_report(frame, sources)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "comparison.md", out_dir / "comparison.csv"]
    if cfg.views:
        # the views show one run per (model, persona): the latest of its seeds
        lines, view_files = write_views(latest_per_pair(records), cfg, out_dir)
        markdown += "\n".join(lines) + "\n" if lines else ""
        files += view_files
    atomic_write_text(out_dir / "comparison.md", markdown)
    atomic_write_text(out_dir / "comparison.csv", frame.to_csv(index=False))
    if cfg.plots:
        files += write_plots(frame, out_dir / "plots")
    return Comparison(frame=frame, markdown=markdown, files=files)
