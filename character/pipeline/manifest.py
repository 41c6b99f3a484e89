"""Stage manifests: the record that says a stage finished, with what config and which inputs.

A stage's folder holds ``manifest.json`` only once the stage has finished; while it runs, the
folder holds ``.in_progress.json`` with the same fingerprint, so an interrupted stage resumes
only if nothing it depends on has changed since.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from character.io import atomic_write_json, read_json

MANIFEST = "manifest.json"
IN_PROGRESS = ".in_progress.json"


def fingerprint(stage_name: str, version: int, hashed_config: dict[str, Any], inputs: dict[str, str]) -> str:
    """Hash of everything that determines a stage's output.

    ``inputs`` maps each upstream stage to the ``run_id`` of the output it read, so a rerun of an
    upstream stage makes every stage after it stale, even when its config did not change.
    """
    payload = json.dumps(
        {"stage": stage_name, "version": version, "config": hashed_config, "inputs": inputs},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / MANIFEST
    return read_json(path) if path.exists() else None


def read_in_progress(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / IN_PROGRESS
    return read_json(path) if path.exists() else None


def outputs_intact(stage_dir: Path, manifest: dict[str, Any]) -> bool:
    """Every output the manifest lists still exists with the recorded size."""
    for rel, size in manifest.get("outputs", {}).items():
        path = stage_dir / rel
        if not path.exists():
            return False
        if path.is_file() and path.stat().st_size != size:
            return False
    return True


def output_sizes(stage_dir: Path, outputs: list[str]) -> dict[str, int]:
    """Sizes of the listed outputs (files; folders count as 0 and are checked for existence)."""
    sizes: dict[str, int] = {}
    for rel in outputs:
        path = stage_dir / rel
        if not path.exists():
            raise FileNotFoundError(f"stage declared output {rel!r} but {path} does not exist")
        sizes[rel] = path.stat().st_size if path.is_file() else 0
    return sizes


def new_run_id(fp: str) -> str:
    """Identifies one completed execution of a stage (fingerprint prefix + completion time)."""
    return f"{fp[:12]}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000:06d}"


def write_manifest(stage_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(stage_dir / MANIFEST, manifest)
    (stage_dir / IN_PROGRESS).unlink(missing_ok=True)
