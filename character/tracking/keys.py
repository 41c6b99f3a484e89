"""How a stage's record becomes flat ``<stage>/<name>`` values, the same for W&B and for compare.

The W&B run of a job and ``launchers.compare`` reading a run directory must name every number
identically, or a comparison would depend on where it read the runs from. Both go through
``stage_values``; ``comparable`` then picks the numbers worth comparing.

Layout, for a stage ``dpo``:

- ``dpo/status`` (ran | skipped | failed), ``dpo/duration_s``, ``dpo/run_id`` (the manifest's);
- ``dpo/<metric>`` for each entry of the stage's metrics, nested dicts joined with ``/``
  (``eval/spearman/before ~ after (like)``);
- ``dpo/counts/<count>`` for its counts;
- ``train/dpo/<key>``: the per-step training curve (W&B history only), step ``train/dpo/global_step``;
- ``dpo/plots/<file>`` and ``dpo/tables/<file>``: images and tables (W&B media only).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from typing import Any

HISTORY_PREFIX = "train"
RESERVED = ("status", "duration_s", "run_id", "counts", "plots", "tables")


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested dicts as ``prefix/a/b`` keys; leaves are kept as they are."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(f"{prefix}/{key}", item))
        return flat
    return {prefix: value}


def stage_values(stage: str, status: str, manifest: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flat values of one stage: its status, and what its manifest recorded (when finished)."""
    values: dict[str, Any] = {f"{stage}/status": status}
    if manifest is None:
        return values
    values[f"{stage}/duration_s"] = manifest.get("duration_s")
    values[f"{stage}/run_id"] = manifest.get("run_id")
    values.update(flatten(f"{stage}/counts", manifest.get("counts") or {}))
    values.update(flatten(stage, manifest.get("metrics") or {}))
    return values


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def comparable(values: Mapping[str, Any], counts: bool = False) -> dict[str, float]:
    """The numbers of ``stage_values`` worth comparing across runs: stage metrics, and counts if
    asked; not durations, run ids, training curves, media or W&B's own ``_`` keys."""
    picked: dict[str, float] = {}
    for key, value in values.items():
        parts = key.split("/")
        if len(parts) < 2 or key.startswith("_") or parts[0] == HISTORY_PREFIX or not is_number(value):
            continue
        if parts[1] == "counts" and counts:
            picked[key] = float(value)
        elif parts[1] not in RESERVED:
            picked[key] = float(value)
    return picked


def match_patterns(patterns: Iterable[str], available: Iterable[str]) -> dict[str, list[str]]:
    """For each glob pattern (``dpo/final_*``), the available keys it matches, in sorted order."""
    names = sorted(set(available))
    return {pattern: [name for name in names if fnmatch.fnmatchcase(name, pattern)] for pattern in patterns}
