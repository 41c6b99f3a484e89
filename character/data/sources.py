"""User prompts from a dataset id, a local JSONL file, or a prompt set shipped with the package.

A source spec is one of:
- the name of a shipped set: ``general`` (LIMA stand-in), ``heldout`` (Pure-Dove stand-in),
  ``chat_first_turns`` (WildChat stand-in), each a few hundred prompts written for this package;
- a path to a JSONL file whose rows hold ``prompt``, or chat ``messages`` / ``conversations``
  (the first user turn is taken);
- a Hugging Face dataset id (``GAIR/lima``), loaded with ``datasets``; the first user turn of each
  conversation is taken.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from character.errors import CharacterError

SHIPPED = Path(__file__).resolve().parent / "prompts"


def first_user_turn(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    for key in ("messages", "conversations", "conversation"):
        turns = row.get(key)
        if isinstance(turns, list) and turns:
            first = turns[0]
            if isinstance(first, str):  # LIMA: alternating user/assistant strings
                return first
            if isinstance(first, dict):
                if isinstance(first.get("input"), str):  # Pure-Dove: {"input": ..., "output": ...}
                    return first["input"]
                for turn in turns:
                    if turn.get("role", turn.get("from")) in ("user", "human"):
                        return turn.get("content", turn.get("value"))
    return None


def _rows_from_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise CharacterError(f"{path}, line {number}: not valid JSON ({error.msg}).") from error
    return rows


def _rows_from_hub(dataset_id: str, split: str) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        return list(load_dataset(dataset_id, split=split))
    except Exception as error:  # offline machines, gated datasets, typos
        raise CharacterError(
            f"prompt source {dataset_id!r} could not be loaded with datasets ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); give a local JSONL path instead, or one of the "
            f"shipped sets: {', '.join(sorted(p.stem for p in SHIPPED.glob('*.jsonl')))}."
        ) from error


def load_prompts(spec: str, limit: int | None = None, seed: int = 0, split: str = "train") -> list[str]:
    """Prompts from ``spec`` (see module doc); a seeded sample of ``limit`` when given."""
    shipped = SHIPPED / f"{spec}.jsonl"
    if shipped.exists():
        rows = _rows_from_jsonl(shipped)
    elif spec.endswith(".jsonl") or Path(spec).expanduser().exists():
        path = Path(spec).expanduser()
        if not path.exists():
            raise CharacterError(f"prompt source file {path} does not exist.")
        rows = _rows_from_jsonl(path)
    else:
        rows = _rows_from_hub(spec, split)
    prompts = [p.strip() for p in (first_user_turn(row) for row in rows) if isinstance(p, str) and p.strip()]
    if not prompts:
        raise CharacterError(
            f"prompt source {spec!r} holds no user prompts (expected 'prompt' or chat turns)."
        )
    if limit is not None and limit < len(prompts):
        prompts = random.Random(seed).sample(prompts, limit)
    return prompts
