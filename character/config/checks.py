"""What each numeric and enumerated config value may be, declared beside its field in the schema.

Hydra's structured configs check types only: ``stages.dpo.beta=-1`` is a valid float and used to
train DPO with a negative beta. So a schema field says what it accepts where its default is
written, ``beta: float = knob(0.1, gt=0)``, and ``field_problems`` walks the schema and the
composed config together, reporting every value outside its field's declaration. One place holds
the default and the range; docs/configuration.md lists them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

ALLOWED = "allowed"  # the metadata key of a field's declaration
# The metadata key marking a field that cannot change any stage's output (character/pipeline/stage.py)
RUNTIME = "runtime"


@dataclass(frozen=True)
class Allowed:
    """The values one field accepts. Bounds are inclusive (``ge``/``le``) or exclusive
    (``gt``/``lt``); ``choices`` lists every accepted value; ``pattern`` is a full-match regex
    for strings; ``each`` applies the declaration to every item of a list instead of the list;
    ``hint`` replaces the generated description where a pattern would read badly."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    each: bool = False
    nonempty: bool = False
    hint: str | None = None

    def accepts(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, str):
            if self.nonempty and not value.strip():
                return False
            return self.pattern is None or re.fullmatch(self.pattern, value) is not None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True  # Hydra has already checked the type
        return math.isfinite(value) and self._in_bounds(value)

    def _in_bounds(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def describe(self, noun: str = "a number") -> str:
        """What is expected, e.g. ``a number in (0, 1]`` or ``one of 'k3', 'squared_log_ratio'``."""
        if self.hint is not None:
            return self.hint
        if self.choices is not None:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        if self.pattern is not None:
            return f"a string matching {self.pattern}"
        if self.nonempty:
            return "a non-empty string"
        low = (self.gt, "(") if self.gt is not None else (self.ge, "[") if self.ge is not None else None
        high = (self.lt, ")") if self.lt is not None else (self.le, "]") if self.le is not None else None
        if low and high:
            return f"{noun} in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
        if low:
            return f"{noun} {'>' if low[1] == '(' else '>='} {_number(low[0])}"
        if high:
            return f"{noun} {'<' if high[1] == ')' else '<='} {_number(high[0])}"
        return f"a finite {noun.removeprefix('a ').removeprefix('an ')}"


def knob(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    each: bool = False,
    nonempty: bool = False,
    hint: str | None = None,
    runtime: bool = False,
) -> Any:
    """A dataclass field with its default (or ``factory``) and the values it accepts.

    ``runtime=True`` says the field chooses where or how fast a computation runs, or what is
    logged, never what is computed: the pipeline then leaves it out of every stage's fingerprint
    (``runtime_paths``; docs/pipeline.md, "The stage contract"). Say why beside the field."""
    allowed = Allowed(gt, ge, lt, le, choices, pattern, each, nonempty, hint)
    metadata: dict[str, Any] = {ALLOWED: allowed}
    if runtime:
        metadata[RUNTIME] = True
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Problem:
    """One value outside its declaration: the dotted key, the value, and what was expected."""

    key: str
    value: Any
    expected: str


def field_problems(schema: type, node: DictConfig, prefix: str = "") -> list[Problem]:
    """Every value under ``node`` that its field in ``schema`` (a dataclass) does not accept,
    recursing into nested dataclasses, lists of them and dicts of them. Missing values (``???``)
    are left to the checks that know what the missing part means."""
    hints = typing.get_type_hints(schema)
    problems: list[Problem] = []
    for spec in dataclasses.fields(schema):
        if spec.name not in node or OmegaConf.is_missing(node, spec.name):
            continue
        value = node[spec.name]
        allowed = spec.metadata.get(ALLOWED)
        problems += _value_problems(f"{prefix}{spec.name}", value, hints[spec.name], allowed)
    return problems


def _value_problems(key: str, value: Any, annotation: Any, allowed: Allowed | None) -> list[Problem]:
    if value is None:
        return []  # Hydra rejects None for a field that is not Optional
    optional, annotation = _is_optional(annotation), _without_none(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return field_problems(annotation, value, f"{key}.")
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return [p for i, item in enumerate(value) for p in field_problems(args[0], item, f"{key}[{i}].")]
    if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return [p for name, item in value.items() for p in field_problems(args[1], item, f"{key}.{name}.")]
    if allowed is None:
        return []
    if allowed.each:
        expected = allowed.describe(_noun(args[0] if args else Any))
        return [
            Problem(f"{key}[{i}]", item, expected)
            for i, item in enumerate(value)
            if not allowed.accepts(item)
        ]
    if allowed.accepts(value):
        return []
    expected = allowed.describe(_noun(annotation))
    return [Problem(key, value, f"null or {expected}" if optional else expected)]


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _without_none(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if _is_optional(annotation):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _noun(annotation: Any) -> str:
    return "an integer" if annotation is int else "a number"


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def leaves(schema: type) -> dict[str, tuple[Any, Allowed | None]]:
    """Every leaf field of ``schema`` (recursing like ``field_problems``) with its annotation
    (``X | None`` stripped) and its declaration, keyed by dotted path, ``[]`` standing for list
    items and ``<name>`` for dict entries: for the test that no numeric field goes undeclared."""
    hints = typing.get_type_hints(schema)
    found: dict[str, tuple[Any, Allowed | None]] = {}
    for spec in dataclasses.fields(schema):
        annotation = _without_none(hints[spec.name])
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if dataclasses.is_dataclass(annotation):
            found.update({f"{spec.name}.{k}": v for k, v in leaves(annotation).items()})
        elif origin is list and args and dataclasses.is_dataclass(args[0]):
            found.update({f"{spec.name}[].{k}": v for k, v in leaves(args[0]).items()})
        elif origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            found.update({f"{spec.name}.<name>.{k}": v for k, v in leaves(args[1]).items()})
        else:
            found[spec.name] = (annotation, spec.metadata.get(ALLOWED))
    return found


def runtime_paths(schema: type, prefix: str = "") -> list[str]:
    """Dotted paths of the fields of ``schema`` marked ``runtime`` (recursing like ``leaves``;
    ``*`` stands for a dict entry's name); a marked group field stands for all of its keys."""
    hints = typing.get_type_hints(schema)
    found: list[str] = []
    for spec in dataclasses.fields(schema):
        path = f"{prefix}{spec.name}"
        if spec.metadata.get(RUNTIME):
            found.append(path)
            continue
        annotation = _without_none(hints[spec.name])
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if dataclasses.is_dataclass(annotation):
            found += runtime_paths(annotation, f"{path}.")
        elif origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            found += runtime_paths(args[1], f"{path}.*.")
    return found
