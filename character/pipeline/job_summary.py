"""The job's ``summary.json`` at the root of its run directory: what the runner records about the
whole job (model, persona, each stage's status, time, counts and metrics).

One home for its name, so the runner that writes it and the readers (the report stage,
``launchers.compare``, ``launchers.robustness``) cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.io import read_json

SUMMARY_FILE = "summary.json"


def summary_path(run_dir: Path) -> Path:
    return run_dir / SUMMARY_FILE


def read_job_summary(run_dir: Path) -> dict[str, Any]:
    """The job's summary; empty before the runner first wrote it."""
    path = summary_path(run_dir)
    return read_json(path) if path.exists() else {}
