"""One run's identity and values, whatever it was read from."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from character.errors import CharacterError

log = logging.getLogger("character.compare")


@dataclass
class RunRecord:
    """A (model, persona) run: flat ``<stage>/<name>`` values (character.tracking.keys layout)."""

    model: str
    persona: str
    values: dict[str, Any]
    source: str  # a run directory, an offline W&B run directory, or entity/project/run_id
    time: float  # when it ran: picks the latest of several runs of one pair
    group: str | None = None


def identity_from_config(config: Mapping[str, Any], source: str) -> tuple[str, str] | None:
    """(model, persona) names from a job's logged config; None for a run not made by a job."""
    model, persona = config.get("model"), config.get("persona")
    if not isinstance(model, Mapping) or not isinstance(persona, Mapping):
        log.info("skipping %s: its config has no model and persona (not a launchers.train job)", source)
        return None
    if "name" not in model or "name" not in persona:
        return None
    return str(model["name"]), str(persona["name"])


def latest_per_pair(records: list[RunRecord]) -> list[RunRecord]:
    """One record per (model, persona): the latest, so a rerun replaces the run it repeats."""
    if not records:
        raise CharacterError(
            "no runs to compare: the given sources hold no runs of launchers.train (after the group "
            "filter, if one was set); expected run directories, offline W&B runs or a W&B project "
            "with such runs."
        )
    latest: dict[tuple[str, str], RunRecord] = {}
    for record in sorted(records, key=lambda r: r.time):
        key = (record.model, record.persona)
        if key in latest:
            log.info("%s/%s: using %s, the latest run (not %s)", *key, record.source, latest[key].source)
        latest[key] = record
    return sorted(latest.values(), key=lambda r: (r.persona, r.model))
