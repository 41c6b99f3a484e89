"""One run's identity and values, whatever it was read from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from character.errors import CharacterError

log = logging.getLogger("character.compare")


@dataclass
class RunRecord:
    """A (model, persona, seed) run: flat ``<stage>/<name>`` values (character.tracking.keys layout)."""

    model: str
    persona: str
    values: dict[str, Any]
    source: str  # a run directory, an offline W&B run directory, or entity/project/run_id
    time: float  # when it ran: picks the latest of several runs of one job
    group: str | None = None
    seed: int | None = None  # the job's seed; None where the source does not record it


def identity_from_config(config: Mapping[str, Any], source: str) -> tuple[str, str] | None:
    """(model, persona) names from a job's logged config; None for a run not made by a job."""
    model, persona = config.get("model"), config.get("persona")
    if not isinstance(model, Mapping) or not isinstance(persona, Mapping):
        log.info("skipping %s: its config has no model and persona (not a launchers.train job)", source)
        return None
    if "name" not in model or "name" not in persona:
        return None
    return str(model["name"]), str(persona["name"])


def seed_of(config: Mapping[str, Any]) -> int | None:
    """The job's ``seed`` from its config (None when absent or not an integer)."""
    seed = config.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def latest_per_job(records: list[RunRecord]) -> list[RunRecord]:
    """One record per (model, persona, seed): the latest, so a rerun replaces the run it repeats
    while the seeds of a seed sweep are all kept."""
    if not records:
        raise CharacterError(
            "no runs to compare: the given sources hold no runs of launchers.train (after the group "
            "filter, if one was set); expected run directories, offline W&B runs or a W&B project "
            "with such runs."
        )
    return _latest(records, lambda r: (r.model, r.persona, r.seed))


def latest_per_pair(records: list[RunRecord]) -> list[RunRecord]:
    """One record per (model, persona), the latest: for the views, which show one run per pair."""
    return _latest(records, lambda r: (r.model, r.persona))


def _latest(records: list[RunRecord], key: Callable[[RunRecord], tuple]) -> list[RunRecord]:
    latest: dict[tuple, RunRecord] = {}
    for record in sorted(records, key=lambda r: r.time):
        job = key(record)
        if job in latest:
            log.info("%s: using %s, the latest run (not %s)", job, record.source, latest[job].source)
        latest[job] = record
    return sorted(latest.values(), key=lambda r: (r.persona, r.model, -1 if r.seed is None else r.seed))
