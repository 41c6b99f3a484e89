"""Runs from W&B: offline run directories (read locally) or a project on a W&B server."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from character.compare.records import RunRecord, identity_from_config, seed_of
from character.errors import CharacterError
from character.tracking.offline import find_offline_runs, read_offline_run


def _record(config: Mapping[str, Any], summary: Mapping[str, Any], source: str, time: float, group: str):
    identity = identity_from_config(config, source)
    if identity is None:
        return None
    return RunRecord(
        *identity, values=dict(summary), source=source, time=time, group=group or None, seed=seed_of(config)
    )


def read_offline_records(paths: list[str], group: str | None = None) -> list[RunRecord]:
    """Every offline run under ``paths`` (run directories, or ``wandb`` folders holding them)."""
    records: list[RunRecord] = []
    for path in paths:
        run_dirs = find_offline_runs(path)
        if not run_dirs:
            raise CharacterError(
                f"{path} holds no W&B runs: expected an offline-run-* directory, or a folder with "
                "offline-run-* directories (WANDB_DIR/wandb, by default <run_root>/wandb)."
            )
        for run_dir in run_dirs:
            run = read_offline_run(run_dir)
            if group and run.group != group:
                continue
            record = _record(run.config, run.summary, str(Path(run_dir)), run.start_time, run.group)
            if record is not None:
                records.append(record)
    return records


def read_online_records(project: str, entity: str | None, group: str | None) -> list[RunRecord]:
    """The runs of a W&B project (optionally one group), through ``wandb.Api`` (needs a network
    and WANDB_API_KEY)."""
    import wandb

    path = f"{entity}/{project}" if entity else project
    try:
        runs = list(wandb.Api().runs(path, filters={"group": group} if group else None))
    except Exception as error:  # wandb.errors.CommError, UsageError, ...
        raise CharacterError(
            f"could not list the runs of W&B project {path!r} (group {group!r}): {error}; expected a "
            "reachable project (entity/project) and WANDB_API_KEY in the environment."
        ) from error
    records = []
    for run in runs:
        summary = {key: run.summary[key] for key in run.summary.keys()}
        started = datetime.fromisoformat(str(run.created_at).replace("Z", "+00:00")).timestamp()
        record = _record(run.config, summary, f"{path}/{run.id}", started, run.group or "")
        if record is not None:
            records.append(record)
    return records
