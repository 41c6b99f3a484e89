"""Reading wandb's offline run file: records spanning blocks, a torn tail, a file that is not one."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import CharacterError
from character.tracking.offline import find_offline_runs, read_offline_run


def write_run(wandb_dir: Path, big: str) -> Path:
    import wandb

    run = wandb.init(
        mode="offline", project="reader", group="g", job_type="j", name="n", tags=["t"], dir=str(wandb_dir),
        config={"big": big, "nested": {"x": 1}}, reinit="finish_previous",
    )  # fmt: skip
    for step in range(3):
        run.log({"curve": step * 0.5})
    run.summary["final"] = 1.25
    run.finish()
    wandb.teardown()  # wandb-core writes the file asynchronously; tearing down flushes it
    (path,) = find_offline_runs(wandb_dir)
    return path


def test_records_larger_than_a_block_and_a_torn_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    big = "character " * 10_000  # a 100 kB config record spans four 32 KiB blocks
    path = write_run(tmp_path / "wandb", big)
    run = read_offline_run(path)
    assert (run.name, run.group, run.job_type, run.tags, run.project) == ("n", "g", "j", ["t"], "reader")
    assert run.config == {"big": big, "nested": {"x": 1}}
    assert run.summary["final"] == 1.25 and run.summary["curve"] == 1.0
    assert [row["curve"] for row in run.history] == [0.0, 0.5, 1.0]
    assert run.exit_code == 0

    # a run killed mid-write: what was written before the tear is read, nothing after it
    (datastore,) = path.glob("run-*.wandb")
    data = datastore.read_bytes()
    datastore.write_bytes(data[:-40])  # the last records, the exit record among them, cut in half
    torn = read_offline_run(path)
    assert torn.run_id == run.run_id and torn.config == run.config
    assert torn.exit_code is None
    datastore.write_bytes(data[:50_000])  # inside the 100 kB run record: not even the run is known
    assert read_offline_run(path).run_id == ""


def test_a_file_that_is_not_a_run_is_named(tmp_path: Path) -> None:
    run_dir = tmp_path / "offline-run-x"
    run_dir.mkdir()
    (run_dir / "run-x.wandb").write_bytes(b"not a wandb file")
    with pytest.raises(CharacterError, match="run-x.wandb is not a W&B run file"):
        read_offline_run(run_dir)
    with pytest.raises(CharacterError, match="is not a W&B run directory"):
        read_offline_run(tmp_path)
