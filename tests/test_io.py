"""Crash-safe writes: atomic replacement and JSONL append-and-resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.io import JsonlAppender, atomic_write_json, atomic_write_text, read_json, read_jsonl


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": Boom()})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "t.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"


def test_appender_cuts_a_torn_tail_and_knows_what_is_done(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    with JsonlAppender(path) as out:
        out.write({"id": 0, "x": "a"})
        out.write({"id": 1, "x": "b"})
    with path.open("a") as handle:
        handle.write('{"id": 2, "x": "tor')  # a crash in the middle of a write
    assert [row["id"] for row in read_jsonl(path)] == [0, 1]
    with JsonlAppender(path) as out:
        assert out.done_keys == {0, 1}
        out.write({"id": 2, "x": "c"})
        with pytest.raises(ValueError, match="id=1"):
            out.write({"id": 1, "x": "again"})
    assert read_jsonl(path) == [{"id": 0, "x": "a"}, {"id": 1, "x": "b"}, {"id": 2, "x": "c"}]
