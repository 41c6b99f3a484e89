"""What a job's W&B run is called and where it goes, from ``cfg.wandb`` and the environment.

Kept apart from the code that talks to wandb so that the rules (mode, group, directory) can be
read in one place and used without importing wandb.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from character.errors import CharacterError

MODES = ("online", "offline", "disabled")
# wandb's older names for the same modes, still accepted in WANDB_MODE.
MODE_ALIASES = {"dryrun": "offline", "run": "online"}
# With neither wandb.mode nor WANDB_MODE set, a job logs offline: it never needs a network or a
# login, never blocks, and `wandb sync` uploads the runs later.
DEFAULT_MODE = "offline"


@dataclass
class RunSettings:
    """Arguments of ``wandb.init`` for one job."""

    mode: str
    project: str
    entity: str | None
    group: str | None
    job_type: str
    name: str
    tags: list[str] = field(default_factory=list)
    dir: Path = Path(".")


def resolve_mode(configured: str | None, environ: dict[str, str] | None = None) -> str:
    """``wandb.mode`` if set, else ``WANDB_MODE``, else offline; unknown names are errors."""
    environ = dict(os.environ) if environ is None else environ
    source, mode = ("wandb.mode", configured) if configured else ("WANDB_MODE", environ.get("WANDB_MODE"))
    if not mode:
        return DEFAULT_MODE
    mode = MODE_ALIASES.get(mode.lower(), mode.lower())
    if mode not in MODES:
        raise CharacterError(f"{source}={mode!r} is not a W&B mode; expected one of {list(MODES)}.")
    return mode


def default_group() -> str | None:
    """The experiment a job belongs to, when ``wandb.group`` is not set: the sweep folder's name in
    a Hydra multirun (every job of one ``-m`` invocation shares it), the Hydra job name in a
    single run, None outside Hydra (compose API, scripts)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir).name
    return hydra_cfg.job.name


def wandb_dir(wandb_cfg: DictConfig, run_root: str, environ: dict[str, str] | None = None) -> Path:
    """Where runs are written: ``wandb.dir``, else ``$WANDB_DIR``, else the run root."""
    environ = dict(os.environ) if environ is None else environ
    return Path(wandb_cfg.dir or environ.get("WANDB_DIR") or run_root).resolve()


def run_settings(cfg: DictConfig, environ: dict[str, str] | None = None) -> RunSettings:
    """Settings of the job's run: group = experiment, job_type = the ``+stage=`` selection,
    tags = model and persona (+ ``wandb.tags``), files under ``wandb.dir`` / ``$WANDB_DIR`` /
    ``run_root``."""
    environ = dict(os.environ) if environ is None else environ
    wandb_cfg = cfg.wandb
    tags = [str(cfg.model.name), str(cfg.persona.name)]
    variant = cfg.get("variant")
    if variant:  # an ablation's run is told apart from the main run's
        tags.append(str(variant))
    tags += [str(tag) for tag in wandb_cfg.tags if str(tag) not in tags]
    return RunSettings(
        mode=resolve_mode(wandb_cfg.mode, environ),
        project=str(wandb_cfg.project),
        entity=wandb_cfg.entity,
        group=wandb_cfg.group or default_group(),
        job_type=str(cfg.stage.name),
        name="/".join(str(part) for part in (cfg.model.name, cfg.persona.name, variant) if part),
        tags=tags,
        dir=wandb_dir(wandb_cfg, cfg.run_root, environ),
    )
