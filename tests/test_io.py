"""Crash-safe writes: atomic replacement and JSONL append-and-resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.io import (
    JsonlAppender,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
    staged_folder,
)


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


def _folder(path: Path, **files: str) -> None:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_staged_folder_replaces_the_old_folder_only_when_the_new_one_is_finished(tmp_path: Path) -> None:
    target = tmp_path / "merged"
    _folder(target, old="1")
    with pytest.raises(RuntimeError, match="crashed mid-write"):
        with staged_folder(target) as staging:
            _folder(staging, half="written")
            raise RuntimeError("crashed mid-write")
    assert _contents(target) == {"old": "1"}
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]  # the staging folder is gone
    with staged_folder(target) as staging:
        _folder(staging, new="2", weights="w")
    assert _contents(target) == {"new": "2", "weights": "w"}
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]


def test_staged_folder_keeps_a_finished_cache_entry_and_replaces_a_broken_one(tmp_path: Path) -> None:
    target = tmp_path / "model"
    _folder(target, config="theirs", marker="done")  # a concurrent build that finished first
    with staged_folder(target, keep_if="marker") as staging:
        _folder(staging, config="ours", marker="done")
    assert _contents(target) == {"config": "theirs", "marker": "done"}
    (target / "marker").unlink()  # an entry without its marker is not trusted
    with staged_folder(target, keep_if="marker") as staging:
        _folder(staging, config="ours", marker="done")
    assert _contents(target) == {"config": "ours", "marker": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_staged_folder_puts_the_old_folder_back_when_the_new_one_is_missing(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    _folder(target, old="1")
    with pytest.raises(FileNotFoundError):
        with staged_folder(target):
            pass  # the block wrote nothing: there is no folder to move in
    assert _contents(target) == {"old": "1"}
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
