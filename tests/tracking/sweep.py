"""A real 2-persona multirun of the toy stages with W&B offline, shared by tracking and compare tests.

``launchers.train ... -m`` runs both jobs one after the other in one process (Hydra's basic
launcher), which is exactly where W&B runs could get mixed up. The sweep runs once per test
session and is read by several tests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from character.io import read_json
from tests.conftest import run_cli

PERSONAS = ("loving", "sarcastic")
PLUGINS = "plugins=[tests.plugins.toy_stages,tests.tracking.persona_stage]"
STAGES = "stage.run=[prepare,toy_rows,toy_count,persona_stats]"


@dataclass(frozen=True)
class ToySweep:
    run_root: Path
    wandb_dir: Path
    sweep_dir: Path

    def run_dir(self, persona: str) -> Path:
        return self.run_root / "tiny" / persona

    def summary(self, persona: str) -> dict:
        return read_json(self.run_dir(persona) / "summary.json")


def offline_env(base: Path) -> dict[str, str]:
    return {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(base / "wandb"),
        "CHARACTER_RUN_ROOT": str(base / "runs"),
    }


@functools.cache
def toy_sweep(base: Path) -> ToySweep:
    """Run the sweep into ``base`` (once per path and session)."""
    env = offline_env(base)
    # verbose=true: W&B records a run's console output, and only a verbose job prints its details
    # there (a quiet job sends them to <run_dir>/logs/, docs/tracking.md)
    result = run_cli(
        "+persona=" + ",".join(PERSONAS), "+model=tiny", PLUGINS, STAGES, "verbose=true", "-m", env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_root = base / "runs"
    (sweep_dir,) = list((run_root / ".sweeps").iterdir())
    return ToySweep(run_root=run_root, wandb_dir=base / "wandb", sweep_dir=sweep_dir)
