"""One W&B run per pipeline job: the resolved config (redacted), each stage's numbers, its training
curve, and its tables and plots.

Why one run per job (not per stage): W&B compares runs row by row (runs table, bar and parallel
coordinates charts), so all of a (model, persona)'s numbers, from the DPO loss to the eval
Spearman, must sit on one run to be compared across personas and models. ``job_type`` is the
``+stage=`` selection (``all``, ``dpo``, ``introspection``...), which tells a full pipeline from
a partial rerun. See docs/tracking.md.

A run is always finished before ``track_job`` returns, also on errors, so the jobs of a Hydra
multirun (run one after another in one process) never write into each other's runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from character.errors import CharacterError
from character.io import read_jsonl
from character.pipeline import manifest as mf
from character.tracking.keys import HISTORY_PREFIX, is_number, stage_values
from character.tracking.redact import Redactor
from character.tracking.settings import RunSettings, run_settings

log = logging.getLogger("character.tracking")

# W&B refuses bigger tables in a logged step; larger CSVs are truncated in W&B (the file stays whole).
MAX_TABLE_ROWS = 10_000


class JobTracker(Protocol):
    """What the runner calls after each stage; ``status`` is ``ran`` or ``skipped``."""

    def log_stage(self, stage: str, status: str, stage_dir: Path) -> None: ...


class NoTracking:
    """``wandb.mode=disabled``: nothing is imported, written or sent."""

    def log_stage(self, stage: str, status: str, stage_dir: Path) -> None:
        return None


class WandbJobRun:
    """The open W&B run of one job."""

    def __init__(self, run: Any, redactor: Redactor, selected: list[str]) -> None:
        self.run = run
        self.redactor = redactor
        self.selected = selected
        self.logged: list[str] = []

    def log_stage(self, stage: str, status: str, stage_dir: Path) -> None:
        """Summary values of the stage (also for a skipped one, from its manifest, so that every
        run of a group is complete), then its training curve and its tables and plots."""
        manifest = mf.read_manifest(stage_dir)
        self.run.summary.update(self.redactor.value(stage_values(stage, status, manifest)))
        if manifest is not None:
            outputs = list(manifest.get("outputs", {}))
            self._log_history(stage, stage_dir, outputs)
            self._log_media(stage, stage_dir, outputs)
        self.logged.append(stage)

    def _log_history(self, stage: str, stage_dir: Path, outputs: list[str]) -> None:
        """Per-step training metrics (``metrics.jsonl`` of openrlhf_ext) on the stage's own step axis."""
        for rel in outputs:
            if not rel.endswith("metrics.jsonl"):
                continue
            by_step = {row.get("global_step"): row for row in read_jsonl(stage_dir / rel)}
            prefix = f"{HISTORY_PREFIX}/{stage}"
            self.run.define_metric(f"{prefix}/global_step")
            self.run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/global_step")
            for step in sorted(s for s in by_step if is_number(s)):
                row = by_step[step]
                self.run.log({f"{prefix}/{key}": value for key, value in row.items() if is_number(value)})

    def _log_media(self, stage: str, stage_dir: Path, outputs: list[str]) -> None:
        media = media_of(stage, [stage_dir / rel for rel in outputs], stage_dir, self.redactor)
        if media:
            self.run.log(media)

    def finish(self, error: BaseException | None) -> None:
        """Close the run; on an error, mark the stage that was running as failed."""
        if error is None:
            self.run.summary["pipeline/status"] = "finished"
            self.run.finish(exit_code=0)
            return
        pending = [stage for stage in self.selected if stage not in self.logged]
        if pending:
            self.run.summary.update(stage_values(pending[0], "failed", None))
        self.run.summary["pipeline/status"] = "failed"
        self.run.summary["pipeline/error"] = self.redactor.text(f"{type(error).__name__}: {error}")[:1000]
        self.run.finish(exit_code=1)


def media_of(prefix: str, paths: list[Path], root: Path, redactor: Redactor) -> dict[str, Any]:
    """W&B images of the PNG files and tables of the CSV files among ``paths``, keyed
    ``<prefix>/plots/<name>`` and ``<prefix>/tables/<name>`` (name relative to ``root``)."""
    import pandas as pd
    import wandb

    media: dict[str, Any] = {}
    for path in paths:
        if not path.is_file():
            continue
        name = str(path.relative_to(root)).rsplit(".", 1)[0]
        try:
            if path.suffix == ".png":
                media[f"{prefix}/plots/{name}"] = wandb.Image(str(path))
            elif path.suffix == ".csv":
                frame = pd.read_csv(path, nrows=MAX_TABLE_ROWS)
                frame = frame.map(lambda cell: redactor.text(cell) if isinstance(cell, str) else cell)
                media[f"{prefix}/tables/{name}"] = wandb.Table(dataframe=frame)
        except (OSError, ValueError) as error:  # an unreadable file must not fail finished work
            log.warning("W&B: could not log %s (%s)", path, error)
    return media


def log_report(
    settings: RunSettings, config: dict[str, Any], values: dict[str, Any], paths: list[Path], root: Path
) -> None:
    """One W&B run for a report made outside a job (e.g. ``launchers.robustness``): its config,
    summary values, and its tables and plots; nothing when the mode is disabled."""
    if settings.mode == "disabled":
        return
    redactor = Redactor()
    run = _start_run(settings, redactor.value(config))
    try:
        run.summary.update(redactor.value(values))
        media = media_of(settings.job_type, paths, root, redactor)
        if media:
            run.log(media)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=0)


def _start_run(settings: RunSettings, config: dict[str, Any]) -> Any:
    import wandb

    settings.dir.mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(
            mode=settings.mode,
            project=settings.project,
            entity=settings.entity,
            group=settings.group,
            job_type=settings.job_type,
            name=settings.name,
            tags=settings.tags,
            config=config,
            dir=str(settings.dir),
            # finish a run a previous job of this process left open (it never shares one)
            reinit="finish_previous",
        )
    except Exception as error:  # wandb raises several types (UsageError, CommError, ...)
        raise CharacterError(
            f"could not start the W&B run (wandb.mode={settings.mode}, project={settings.project!r}): "
            f"{error}. Online logging needs WANDB_API_KEY in the environment (or `wandb login`); "
            "set wandb.mode=offline to log locally and `wandb sync` later, or wandb.mode=disabled."
        ) from error


@contextmanager
def track_job(cfg: DictConfig, run_dir: Path, selected: list[str]) -> Iterator[JobTracker]:
    """Open the job's W&B run (or nothing, when disabled) and always finish it."""
    settings = run_settings(cfg)
    if settings.mode == "disabled":
        yield NoTracking()
        return
    redactor = Redactor()
    run = _start_run(settings, redactor.value(OmegaConf.to_container(cfg, resolve=True)))
    run.summary.update({"pipeline/run_dir": redactor.text(str(run_dir)), "pipeline/stages": selected})
    log.info("W&B run %s (%s, group %s): %s", settings.name, settings.mode, settings.group, run.dir)
    tracker = WandbJobRun(run, redactor, selected)
    try:
        yield tracker
    except BaseException as error:
        tracker.finish(error)
        raise
    tracker.finish(None)
