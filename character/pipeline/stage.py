"""What a stage is, and the registry the runner reads.

A stage is a class with a name, the stages whose outputs it reads (``inputs``), the config keys it
reads, and a ``run`` method that writes its artifacts into its own folder of the run directory.
Stages register themselves with ``@register_stage``; a researcher's own stage module is loaded
with ``plugins=[my.module]`` and registered the same way.

The keys a stage declares are its whole view of the config (docs/pipeline.md, "The stage
contract"):

- ``config_keys``: keys that can change what it writes; their values are hashed into its
  fingerprint, so changing one redoes the stage and, through its new run id, every stage after it;
- ``runtime_keys``: keys it reads that cannot change what it writes (where and how fast it runs);
- ``derived_keys``: keys it reads only to compute ``derived_values``, which are hashed instead of
  the keys themselves (e.g. the introspection counts an ablation changes).

``run`` receives a read-only ``ConfigView`` holding those keys and nothing else: reading any other
key raises ``UndeclaredKeyError`` naming the stage and the key, so a read that would escape the
fingerprint fails on the first run of the stage instead of silently making a later skip wrong.

Whether a key can change an output is one rule for every stage (``Stage.is_runtime``): a key the
schema marks ``runtime=True`` (character/config/schema.py says why, field by field: devices,
parallel layout, inference batch sizes, endpoints, retries, logging), or one the stage lists in
``runtime_keys``, is left out of the fingerprint, wherever it sits, also inside a group a stage
declares whole.
"""

from __future__ import annotations

import functools
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from character.config.checks import runtime_paths
from character.config.schema import PIPELINE_ORDER, TrainConfig

# Keys of the train config that cannot change any stage's output (``*``: any entry of a dict, e.g.
# a coherence judge's name), from the schema's ``runtime=True`` marks.
RUNTIME_KEYS: tuple[str, ...] = tuple(runtime_paths(TrainConfig))


class UndeclaredKeyError(Exception):
    """A stage read a config key it does not declare (a programming error in the stage)."""

    def __init__(self, stage: str, key: str) -> None:
        super().__init__(
            f"stage {stage!r} read the config key {key!r}, which it does not declare: add it to the "
            "stage's config_keys if it can change what the stage writes, else to its runtime_keys "
            "(docs/pipeline.md, 'The stage contract')."
        )
        self.stage, self.key = stage, key


@functools.cache
def _runtime_pattern(stage_keys: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for ``RUNTIME_KEYS`` and a stage's own: a key matching one, or inside one."""
    patterns = (*RUNTIME_KEYS, *stage_keys)
    return re.compile("|".join(f"(?:{translate(p)})|(?:{translate(p + '.*')})" for p in patterns))


def _covers(declared: str, key: str) -> bool:
    """``declared`` is ``key`` or a group holding it."""
    return key == declared or key.startswith(f"{declared}.")


class ConfigView:
    """A read-only view of the config holding only one stage's declared keys.

    Reads work as on a DictConfig (``view.stages.dpo.beta``, ``view.engines["student"]``,
    ``view.get(...)``, ``in``). At or below a declared key the value is the config's own, resolved
    and read-only; above declared keys it is another ``ConfigView``; any other key raises
    ``UndeclaredKeyError``. A declared key the config does not set is missing: ``get`` returns its
    default, attribute access raises ``AttributeError``.
    """

    __slots__ = ("_stage", "_data", "_declared", "_prefix")

    def __init__(self, stage: str, data: DictConfig, declared: Iterable[str], prefix: str = "") -> None:
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_declared", tuple(declared))
        object.__setattr__(self, "_prefix", prefix)

    def _child(self, name: Any) -> tuple[bool, Any]:
        """(whether the config sets ``name``, its value); raises for an undeclared key."""
        key = f"{self._prefix}{name}"
        inside = any(_covers(declared, key) for declared in self._declared)
        if not inside and not any(declared.startswith(f"{key}.") for declared in self._declared):
            raise UndeclaredKeyError(self._stage, key)
        if name not in self._data:
            return False, None
        value = self._data[name]
        if not inside and isinstance(value, DictConfig):
            return True, ConfigView(self._stage, value, self._declared, f"{key}.")
        return True, value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probing for protocols
            raise AttributeError(name)
        found, value = self._child(name)
        if not found:
            raise AttributeError(
                f"config key {self._prefix}{name!s} (declared by stage {self._stage!r}) is not set"
            )
        return value

    def __getitem__(self, name: str) -> Any:
        found, value = self._child(name)
        if not found:
            raise KeyError(
                f"config key {self._prefix}{name!s} (declared by stage {self._stage!r}) is not set"
            )
        return value

    def get(self, name: str, default: Any = None) -> Any:
        found, value = self._child(name)
        return value if found else default

    def __contains__(self, name: object) -> bool:
        return self._child(name)[0]

    def keys(self) -> list[str]:
        """The declared keys set at this level (a view never lists what it hides)."""
        return [str(key) for key in self._data.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"the config view of stage {self._stage!r} is read-only (tried to set {name!r})")

    __setitem__ = __setattr__

    def to_container(self) -> dict[str, Any]:
        """The declared values at this level as plain dicts and lists."""
        return OmegaConf.to_container(self._data, resolve=True)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"ConfigView({self._stage!r}, {self._prefix or '.'}: {self.to_container()!r})"


def _resolved(cfg: DictConfig, key: str, default: Any = None) -> Any:
    node = OmegaConf.select(cfg, key, default=default)
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


_ABSENT = object()


@dataclass
class StageContext:
    """What a running stage may use: its view of the config, its folder, and its inputs' folders.

    ``cfg`` is the stage's ``ConfigView`` when the runner runs it (a test may pass a whole config).
    """

    cfg: Any
    run_dir: Path
    stage_dir: Path
    input_dirs: dict[str, Path]
    log: logging.Logger

    @property
    def seed(self) -> int:
        """The job's seed: a declared key like any other (``seed`` in ``config_keys``)."""
        return int(self.cfg.seed)


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
    # Dotted keys (a group stands for every key in it) that can change this stage's output: hashed.
    config_keys: ClassVar[tuple[str, ...]] = ()
    # Keys it reads that cannot change its output, besides the schema's (``RUNTIME_KEYS``): readable
    # in the view, not hashed. Glob patterns are allowed (``plugin_params.my_stage.*``).
    runtime_keys: ClassVar[tuple[str, ...]] = ()
    # Keys it reads only to compute ``derived_values``: readable, hashed only through those values.
    derived_keys: ClassVar[tuple[str, ...]] = ()
    # Bump when the stage's code changes what it writes, so old outputs are not trusted.
    version: ClassVar[int] = 1

    @classmethod
    def folder(cls, run_dir: Path) -> Path:
        """This stage's folder in ``run_dir`` (named outputs are found from it, not spelled)."""
        return run_dir / cls.name

    def declared_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.config_keys, *self.runtime_keys, *self.derived_keys)))

    def is_runtime(self, key: str) -> bool:
        """Whether ``key`` cannot change this stage's output: the one rule for every stage."""
        return _runtime_pattern(tuple(self.runtime_keys)).match(key) is not None

    def view(self, cfg: DictConfig) -> ConfigView:
        """The read-only view of ``cfg`` that ``run`` gets: the declared keys, resolved."""
        declared = self.declared_keys()
        tree: dict[str, Any] = {}
        for key in declared:
            if any(other != key and _covers(other, key) for other in declared):
                continue  # copied with its group
            *groups, leaf = key.split(".")
            value = _resolved(cfg, key, default=_ABSENT)
            node, path = tree, ""
            for group in groups:  # the groups above it that the config has, even when it is unset
                path = f"{path}.{group}" if path else group
                if not isinstance(OmegaConf.select(cfg, path, default=None), DictConfig):
                    break
                node = node.setdefault(group, {})
            else:
                if value is not _ABSENT:
                    node[leaf] = value
        data = OmegaConf.create(tree)
        OmegaConf.set_readonly(data, True)
        OmegaConf.set_struct(data, True)
        return ConfigView(self.name, data, declared)

    def hashed_config(self, cfg: DictConfig) -> dict[str, Any]:
        """What the fingerprint hashes: the resolved value of each of ``config_keys`` (None when
        unset) less its runtime keys, plus ``derived_values``."""
        hashed: dict[str, Any] = {}
        for key in self.config_keys:
            if not self.is_runtime(key):
                hashed[key] = self._without_runtime(key, _resolved(cfg, key))
        if self.derived_keys or type(self).derived_values is not Stage.derived_values:
            hashed.update(self.derived_values(self.view(cfg)))
        return hashed

    def _without_runtime(self, key: str, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            name: self._without_runtime(f"{key}.{name}", item)
            for name, item in value.items()
            if not self.is_runtime(f"{key}.{name}")
        }

    def derived_values(self, view: ConfigView) -> dict[str, Any]:
        """Values computed from the view that the output depends on beyond ``config_keys``
        (hashed under their own names); none by default."""
        return {}

    def is_intact(self, stage_dir: Path, manifest: dict[str, Any]) -> bool:
        """Extra check before a finished stage is skipped (e.g. an external cache still exists)."""
        return True

    @abstractmethod
    def run(self, ctx: StageContext) -> StageResult:
        """Write the stage's artifacts into ``ctx.stage_dir``; resume from what is there."""


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
