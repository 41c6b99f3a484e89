"""The pipeline runner: skip when unchanged, redo what changed and what follows, resume after kill."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from character.errors import CharacterError
from character.io import read_json, read_jsonl
from character.pipeline import builtin  # noqa: F401
from character.pipeline.runner import PipelineRunner
from tests.config.test_compose import compose_train
from tests.conftest import REPO

TOY = ["plugins=[tests.plugins.toy_stages]", "stage.run=[prepare,toy_rows,toy_count]"]


def run(run_root: Path, *overrides: str) -> dict:
    cfg = compose_train("+persona=loving", "+model=tiny", f"run_root={run_root}", *TOY, *overrides)
    return PipelineRunner(cfg).run()


def statuses(summary: dict) -> dict[str, str]:
    return {name: info["status"] for name, info in summary["stages"].items()}


def test_skip_rerun_and_force(run_root: Path) -> None:
    run_dir = run_root / "tiny" / "loving"
    first = run(run_root, "+plugin_params.toy_rows.rows=5")
    assert statuses(first) == {"prepare": "ran", "toy_rows": "ran", "toy_count": "ran"}
    assert (run_dir / "toy_count" / "total.txt").read_text() == f"{sum(i * i for i in range(5))}.0\n"

    assert set(statuses(run(run_root, "+plugin_params.toy_rows.rows=5")).values()) == {"skipped"}

    # A parameter of the last stage reruns only that stage.
    changed = run(run_root, "+plugin_params.toy_rows.rows=5", "+plugin_params.toy_count.scale=2")
    assert statuses(changed) == {"prepare": "skipped", "toy_rows": "skipped", "toy_count": "ran"}
    assert (run_dir / "toy_count" / "total.txt").read_text() == "60.0\n"

    # A parameter of a middle stage reruns it and every stage after it.
    changed = run(run_root, "+plugin_params.toy_rows.rows=6", "+plugin_params.toy_count.scale=2")
    assert statuses(changed) == {"prepare": "skipped", "toy_rows": "ran", "toy_count": "ran"}
    assert len(read_jsonl(run_dir / "toy_rows" / "rows.jsonl")) == 6

    # Superseded outputs are kept, not deleted.
    history = sorted(p.name.split("-")[0] for p in (run_dir / ".history").iterdir())
    assert history == ["toy_count", "toy_count", "toy_rows"]

    # force reruns the selected stages even though nothing changed, and what reads them.
    forced = run(
        run_root,
        "+plugin_params.toy_rows.rows=6",
        "+plugin_params.toy_count.scale=2",
        "force=true",
        "stage.run=[toy_rows,toy_count]",
    )
    assert statuses(forced)["toy_rows"] == "ran" and statuses(forced)["toy_count"] == "ran"


def test_a_stage_rerun_makes_later_stages_stale(run_root: Path) -> None:
    run(run_root)
    # Rerun only toy_rows with force: toy_count was made from the old output, so running
    # toy_count alone now must redo it rather than trust it.
    run(run_root, "force=true", "stage.run=[toy_rows]")
    summary = run(run_root, "stage.run=[toy_count]")
    assert statuses(summary)["toy_count"] == "ran"


def test_selecting_a_stage_whose_input_is_missing_or_stale(run_root: Path) -> None:
    with pytest.raises(CharacterError, match="reads the output of 'toy_rows'.*\\+stage=toy_rows"):
        run(run_root, "stage.run=[toy_count]")
    run(run_root)
    with pytest.raises(CharacterError, match="toy_rows"):
        run(run_root, "stage.run=[toy_count]", "+plugin_params.toy_rows.rows=3")


def test_deleted_output_is_regenerated(run_root: Path) -> None:
    run(run_root)
    (run_root / "tiny" / "loving" / "toy_rows" / "rows.jsonl").unlink()
    assert statuses(run(run_root))["toy_rows"] == "ran"


def test_manifest_records_config_inputs_and_counts(run_root: Path) -> None:
    run(run_root, "+plugin_params.toy_rows.rows=4")
    run_dir = run_root / "tiny" / "loving"
    manifest = read_json(run_dir / "toy_count" / "manifest.json")
    upstream = read_json(run_dir / "toy_rows" / "manifest.json")
    assert manifest["inputs"] == {"toy_rows": upstream["run_id"]}
    assert upstream["config"]["plugin_params.toy_rows.rows"] == 4
    assert upstream["counts"] == {"rows": 4, "resumed": 0}
    assert upstream["outputs"] == {"rows.jsonl": (run_dir / "toy_rows" / "rows.jsonl").stat().st_size}
    summary = read_json(run_dir / "summary.json")
    assert summary["stages"]["toy_count"]["metrics"]["total"] == 14.0
    assert "persona:" in (run_dir / "config.yaml").read_text()


def test_sigkill_mid_stage_then_rerun_redoes_only_unfinished_work(run_root: Path) -> None:
    run_dir = run_root / "tiny" / "loving"
    rows_path = run_dir / "toy_rows" / "rows.jsonl"
    args = [
        sys.executable,
        "-m",
        "launchers.train",
        "+persona=loving",
        "+model=tiny",
        *TOY,
        "+plugin_params.toy_rows.rows=12",
    ]
    slow = subprocess.Popen(
        args + ["+plugin_params.toy_rows.delay=0.3"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not rows_path.exists() or len(rows_path.read_text().splitlines()) < 4):
        time.sleep(0.05)
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait()
    done_before = [row["id"] for row in read_jsonl(rows_path)]
    assert 4 <= len(done_before) < 12
    assert not (run_dir / "toy_rows" / "manifest.json").exists()
    assert (run_dir / "toy_rows" / ".in_progress.json").exists()
    assert (run_dir / "prepare" / "manifest.json").exists()
    assert not list(run_dir.rglob("*.tmp"))  # no half-written artifact

    rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "prepare: up to date, skipped" in rerun.stdout + rerun.stderr
    assert "toy_rows: resuming an interrupted run" in rerun.stdout + rerun.stderr
    rows = read_jsonl(rows_path)
    assert sorted(row["id"] for row in rows) == list(range(12))  # every row exactly once
    calls = [int(line) for line in (run_dir / "toy_rows" / "calls.log").read_text().split()]
    redone = [i for i in done_before if calls.count(i) > 1]
    assert redone == []  # finished rows were not computed again
    assert len(calls) <= 12 + 1  # at most the one row in flight at the kill was computed twice
    manifest = json.loads((run_dir / "toy_rows" / "manifest.json").read_text())
    assert manifest["counts"]["resumed"] == len(done_before)


def test_an_archived_output_with_the_current_fingerprint_is_restored(
    run_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A config changed and changed back: both stages come back from .history/, nothing is redone."""
    run_dir = run_root / "tiny" / "loving"
    run(run_root, "+plugin_params.toy_rows.rows=5")
    first = {
        name: read_json(run_dir / name / "manifest.json")["run_id"] for name in ("toy_rows", "toy_count")
    }
    run(run_root, "+plugin_params.toy_rows.rows=6")
    with caplog.at_level(logging.INFO, logger="character.pipeline"):
        back = run(run_root, "+plugin_params.toy_rows.rows=5")
    assert statuses(back) == {"prepare": "skipped", "toy_rows": "restored", "toy_count": "restored"}
    assert back["stages"]["toy_rows"]["from"].startswith(".history/toy_rows-")
    assert {name: read_json(run_dir / name / "manifest.json")["run_id"] for name in first} == first
    # every row was computed once, by the first run: the restored folder is that run's
    assert (run_dir / "toy_rows" / "calls.log").read_text().split() == [str(i) for i in range(5)]
    assert len(read_jsonl(run_dir / "toy_rows" / "rows.jsonl")) == 5
    # the outputs they replace (rows=6) are archived in turn, nothing is deleted
    assert sorted(p.name.split("-")[0] for p in (run_dir / ".history").iterdir()) == ["toy_count", "toy_rows"]
    assert "restored toy_rows from .history/toy_rows-" in caplog.text


def test_an_unselected_input_is_restored_too(run_root: Path) -> None:
    run_dir = run_root / "tiny" / "loving"
    run(run_root, "+plugin_params.toy_rows.rows=5")
    rows_id = read_json(run_dir / "toy_rows" / "manifest.json")["run_id"]
    run(run_root, "+plugin_params.toy_rows.rows=6")
    summary = run(run_root, "+plugin_params.toy_rows.rows=5", "stage.run=[toy_count]")
    assert statuses(summary)["toy_count"] == "restored"
    assert read_json(run_dir / "toy_rows" / "manifest.json")["run_id"] == rows_id


def test_force_recomputes_instead_of_restoring(run_root: Path) -> None:
    run(run_root, "+plugin_params.toy_rows.rows=5")
    run(run_root, "+plugin_params.toy_rows.rows=6")
    forced = run(run_root, "+plugin_params.toy_rows.rows=5", "force=true")
    assert statuses(forced)["toy_rows"] == "ran" and statuses(forced)["toy_count"] == "ran"
