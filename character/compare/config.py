"""The config of ``python -m launchers.compare`` (conf/compare.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class EloConfig:
    """The seeded mean Elo of the results views (``character.preferences.ratings.mean_elo``)."""

    k: float = 32.0
    start: float = 1000.0
    passes: int = 100  # independent passes, each over the verdicts in its own random order
    seed: int = 0


@dataclass
class CompareConfig:
    """Where the runs come from (any of the three sources, combined) and what to compare."""

    runs: list[str] = field(default_factory=list)  # run directories or run roots
    wandb_offline: list[str] = field(default_factory=list)  # offline-run-* dirs or folders of them
    wandb_project: str | None = None  # a W&B project on a server (online, through wandb.Api)
    wandb_entity: str | None = None
    wandb_group: str | None = None  # only the runs of this group (W&B sources)
    metrics: list[str] = field(default_factory=list)  # names or globs of <stage>/<metric>; empty: all
    counts: bool = False  # also compare stage counts (<stage>/counts/<name>)
    plots: bool = True
    # the paper's results views from the runs' recorded judgments (character/compare/views.py)
    views: bool = True
    elo: EloConfig = field(default_factory=EloConfig)
    robustness_dir: str | None = None  # launchers.robustness output; null: <run_root>/.robustness
    out_dir: str = MISSING


def register_compare_schema() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
