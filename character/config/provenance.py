"""Which config file, or the command line, gave a key its value: for error messages.

Hydra merges the primary config, the chosen group options and the command-line overrides without
recording where each value came from, yet an error about a value is only useful if it says where
to fix it. So the sources are re-read in Hydra's merge order, latest first: the command line, the
stage, persona, model and scale files, other groups, the engine files, then the primary config; a
key that none of them sets has the schema's default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

COMMAND_LINE = "the command line"
SCHEMA_DEFAULT = "the schema's default (character/config/schema.py)"
# Later groups win a merge; these come last in `python -m launchers.train +persona=.. +model=..`
# (a model file lists its scale before itself, so the model's values win over the scale's).
_PRECEDENCE = ("stage", "persona", "model", "scale")


def option_source(group: str, option: str) -> str:
    """Where Hydra found ``group/option`` (a file path when possible), for error messages."""
    try:
        from hydra.core.hydra_config import HydraConfig

        sources = HydraConfig.get().runtime.config_sources
    except ValueError:  # not inside a Hydra app (e.g. tests composing configs)
        return f"{group}/{option}.yaml"
    for source in sources:
        folder = _source_folder(source.schema, source.path)
        if folder is not None and (folder / group / f"{option}.yaml").is_file():
            return str(folder / group / f"{option}.yaml")
    return f"{group}/{option}.yaml"


def value_source(key: str) -> str:
    """The file that set ``key`` (dotted, list indices allowed), ``the command line``, or the
    schema's default; outside a Hydra app (the compose API) ``the composed config``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return "the composed config"
    path = _plain_key(key)
    choices = {
        group: str(option)
        for group, option in hydra_cfg.runtime.choices.items()
        if option is not None and not group.startswith("hydra/")
    }
    if any(_override_sets(override, path, choices) for override in hydra_cfg.overrides.task):
        return COMMAND_LINE
    for choice in _by_precedence(choices):
        group, _, package = choice.partition("@")
        source = option_source(group, choices[choice])
        if _file_sets(Path(source), package or group.replace("/", "."), path):
            return source
    primary = _primary_config(hydra_cfg)
    if primary is not None and _file_sets(primary, "_global_", path):
        return _through_environment(primary, path) or str(primary)
    return SCHEMA_DEFAULT


def _source_folder(schema: str, location: str) -> Path | None:
    if schema == "file":
        return Path(location)
    if schema == "pkg":
        from importlib import resources

        try:
            return Path(str(resources.files(location.replace("/", "."))))
        except ModuleNotFoundError:
            return None
    return None


def _plain_key(key: str) -> list[str]:
    """``stages.dpo.adam_betas[1]`` -> ``["stages", "dpo", "adam_betas"]``: files set whole lists."""
    return re.sub(r"\[\d+\]", "", key).split(".")


def _override_sets(override: str, path: list[str], choices: dict[str, str]) -> bool:
    """Whether a command-line override (``a.b=1``, ``+a.b=1``, ``a={b: 1}``) sets ``path``;
    group choices (``+model=tiny``, ``engine@engines.teacher=openai``) set no value themselves."""
    target = override.lstrip("+~").split("=", 1)[0]
    if "@" in target or target in choices:
        return False
    parts = target.split(".")
    return path[: len(parts)] == parts


def _by_precedence(choices: dict[str, str]) -> list[str]:
    """Group choices, the one merged last first: persona/model/scale, other groups, engines."""
    known = [group for group in _PRECEDENCE if group in choices]
    engines = [group for group in choices if "@" in group]
    others = [group for group in reversed(list(choices)) if group not in known and group not in engines]
    return known + others + engines


def _file_sets(path: Path, package: str, key: list[str]) -> bool:
    """Whether the YAML file at ``path``, placed at ``package`` (or its own ``# @package``
    header), sets ``key``."""
    return _file_value(path, package, key) is not _UNSET


_UNSET = object()


def _file_value(path: Path, package: str, key: list[str]) -> Any:
    """The value the YAML file at ``path`` gives ``key`` as written (interpolations unresolved),
    or ``_UNSET``."""
    if not path.is_file():
        return _UNSET
    text = path.read_text(encoding="utf-8")
    header = re.search(r"^#\s*@package\s+(\S+)", text, flags=re.MULTILINE)
    if header:
        package = header.group(1)
    prefix = [] if package in ("_global_", "") else package.split(".")
    if key[: len(prefix)] != prefix:
        return _UNSET
    try:
        node: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return _UNSET
    for part in key[len(prefix) :]:
        if not isinstance(node, dict) or part not in node:
            return _UNSET
        node = node[part]
    return node


def _through_environment(path: Path, key: list[str]) -> str | None:
    """``$NAME (through conf/train.yaml)`` when the file takes the value from a set variable,
    e.g. ``run_root: ${oc.env:CHARACTER_RUN_ROOT,runs}``."""
    written = _file_value(path, "_global_", key)
    match = re.match(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)", str(written))
    if match and match.group(1) in os.environ:
        return f"${match.group(1)} (through {path})"
    return None


def _primary_config(hydra_cfg: Any) -> Path | None:
    """The primary config file (conf/train.yaml), found on Hydra's search path."""
    name = f"{hydra_cfg.job.config_name}.yaml"
    for source in hydra_cfg.runtime.config_sources:
        folder = _source_folder(source.schema, source.path)
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None
