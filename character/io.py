"""Crash-safe file writing: atomic replacement for whole files and folders, append-and-resume for
JSONL.

Every artifact between stages goes through these helpers so that a crash (even SIGKILL) leaves
either the old file, the new file, or a JSONL file whose complete lines are all valid rows.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; artifacts should be shareable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file at once (for outputs computed in full, not appended row by row)."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@contextmanager
def staged_folder(target: Path, *, keep_if: str | None = None) -> Iterator[Path]:
    """A path beside ``target`` to build a folder at; renamed to ``target`` when the block ends
    without error, removed otherwise.

    Models and adapters are folders written by several calls, so this gives them the promise
    ``atomic_write_bytes`` gives files: a crash leaves the old ``target`` or the new one, never a
    half-written folder that a later run would trust. An existing ``target`` is swapped out (and
    put back if the new folder cannot be moved in), unless ``keep_if`` names a file it holds: then
    it is a finished copy of the same cache entry (a concurrent builder got there first), kept,
    and the new folder discarded. The move is tried first as one rename, which fails while a
    non-empty ``target`` exists, so a racing builder never moves a finished entry aside.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        built, previous = staging / "folder", staging / "previous"
        yield built
        try:
            built.rename(target)  # atomic; fails while a non-empty target exists
            return
        except OSError:
            if keep_if and (target / keep_if).exists():
                return
        target.rename(previous)
        try:
            built.rename(target)
        except OSError:
            previous.rename(target)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read every complete row; a torn last line (no newline, from a crash) is ignored."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn write from an interrupted run
            if line.strip():
                yield json.loads(line)


class JsonlAppender:
    """Append rows to a JSONL file so that an interrupted run can resume where it stopped.

    On opening, a torn last line left by a crash is cut off; ``done_keys`` then says which rows
    (by ``key_field``) are already written, so callers generate only the missing ones. Each row
    is written with one ``write`` followed by flush + fsync, so a finished row survives a crash.
    """

    def __init__(self, path: Path, key_field: str = "id") -> None:
        self.path = Path(path)
        self.key_field = key_field
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_torn_tail()
        self.done_keys: set[Any] = {row[key_field] for row in iter_jsonl(self.path)}
        self._handle = self.path.open("a", encoding="utf-8")

    def _truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(end)

    def write(self, row: dict[str, Any]) -> None:
        key = row[self.key_field]
        if key in self.done_keys:
            raise ValueError(f"{self.path}: row {self.key_field}={key!r} is already written")
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done_keys.add(key)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
