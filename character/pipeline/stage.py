"""What a stage is, and the registry the runner reads.

A stage is a class with a name, the names of the stages whose outputs it reads, the parts of the
config that affect its output, and a ``run`` method that writes its artifacts into its own folder
of the run directory. Stages register themselves with ``@register_stage``; a researcher's own
stage module is loaded with ``plugins=[my.module]`` and registered the same way.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from character.config.schema import PIPELINE_ORDER


@dataclass
class StageContext:
    """What a running stage may use: the config, its folder, and its inputs' folders."""

    cfg: DictConfig
    run_dir: Path
    stage_dir: Path
    input_dirs: dict[str, Path]
    seed: int
    log: logging.Logger


@dataclass
class StageResult:
    """What a finished stage reports: its files (relative to its folder) and its counts."""

    outputs: list[str]
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class Stage(ABC):
    """Base class of every stage. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()
    # Dotted config keys whose values determine this stage's output (hashed into its manifest).
    config_keys: ClassVar[tuple[str, ...]] = ()
    # Dotted keys inside ``config_keys`` groups that do not affect this stage's output, e.g. a model
    # setting only an evaluation reads (and hashes itself): changing one must not redo this stage
    # and, through its new fingerprint, every stage after it.
    config_excludes: ClassVar[tuple[str, ...]] = ()
    # Bump when the stage's code changes what it writes, so old outputs are not trusted.
    version: ClassVar[int] = 1

    def config_view(self, cfg: DictConfig) -> dict[str, Any]:
        """The resolved values of ``config_keys`` (missing keys are recorded as None), less
        ``config_excludes``."""
        view: dict[str, Any] = {}
        for key in self.config_keys:
            node = OmegaConf.select(cfg, key, default=None)
            view[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        for excluded in self.config_excludes:
            _drop(view, excluded)
        return view

    def is_intact(self, stage_dir: Path, manifest: dict[str, Any]) -> bool:
        """Extra check before a finished stage is skipped (e.g. an external cache still exists)."""
        return True

    @abstractmethod
    def run(self, ctx: StageContext) -> StageResult:
        """Write the stage's artifacts into ``ctx.stage_dir``; resume from what is there."""


def _drop(view: dict[str, Any], dotted: str) -> None:
    """Remove ``dotted`` (e.g. ``model.steering_strength``) from the group of ``view`` holding it."""
    for group, values in view.items():
        if dotted.startswith(f"{group}.") and isinstance(values, dict):
            *parents, leaf = dotted[len(group) + 1 :].split(".")
            for parent in parents:
                values = values.get(parent)
                if not isinstance(values, dict):
                    return
            values.pop(leaf, None)
            return
    raise ValueError(f"config_excludes names {dotted!r}, which is inside none of config_keys {list(view)}")


_REGISTRY: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two stages are registered as {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def available_stages() -> list[str]:
    """Registered stage names: the method's stages in pipeline order, then plugin stages."""
    builtin = [name for name in PIPELINE_ORDER if name in _REGISTRY]
    plugins = [name for name in _REGISTRY if name not in PIPELINE_ORDER]
    return builtin + plugins


def get_stage(name: str) -> Stage:
    return _REGISTRY[name]()
