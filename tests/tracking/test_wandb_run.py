"""One W&B run per job, written offline by real wandb and read back from its run files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from character.errors import CharacterError
from character.pipeline.runner import PipelineRunner
from character.tracking.offline import OfflineRun, find_offline_runs, read_offline_run
from character.tracking.settings import resolve_mode
from tests.config.test_compose import compose_train
from tests.conftest import REPO
from tests.tracking.sweep import PERSONAS, ToySweep


# Not imported from tests.tracking.persona_stage: importing it registers its stage for the whole
# session (the plugin_stages fixture registers it only for a test).
def loss(persona: str, step: int) -> float:
    return len(persona) / step


TOY = ["plugins=[tests.plugins.toy_stages]", "stage.run=[prepare,toy_rows,toy_count,persona_stats]"]


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    return [read_offline_run(path) for path in find_offline_runs(wandb_dir)]


def flushed_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Runs written by this process: wandb-core writes the run file asynchronously, even after
    ``finish`` returns, and flushes everything when its service is torn down (as at exit)."""
    import wandb

    wandb.teardown()
    return offline_runs(wandb_dir)


def by_persona(runs: list[OfflineRun]) -> dict[str, OfflineRun]:
    return {run.config["persona"]["name"]: run for run in runs}


def test_multirun_logs_one_run_per_job_with_only_its_own_persona(sweep: ToySweep) -> None:
    runs = offline_runs(sweep.wandb_dir)
    assert len(runs) == 2
    runs_by_persona = by_persona(runs)
    assert sorted(runs_by_persona) == sorted(PERSONAS)
    for persona, run in runs_by_persona.items():
        other = next(p for p in PERSONAS if p != persona)
        assert run.exit_code == 0
        assert run.name == f"tiny/{persona}"
        assert run.tags == ["tiny", persona]
        assert run.group == sweep.sweep_dir.name  # the experiment: every job of the -m invocation
        assert run.job_type == "all"  # the +stage= selection
        assert run.project == "character-training"
        assert run.config["model"]["name"] == "tiny"
        assert run.config["stage"]["run"] == ["prepare", "toy_rows", "toy_count", "persona_stats"]

        # stage numbers: exactly what the job's own summary.json recorded
        stages = sweep.summary(persona)["stages"]
        summary = run.summary
        assert summary["persona_stats/name_length"] == stages["persona_stats"]["metrics"]["name_length"]
        assert summary["persona_stats/name_length"] == len(persona)
        assert summary["persona_stats/spearman/before ~ after (like)"] == pytest.approx(
            0.5 + len(persona) / 100
        )
        assert summary["toy_count/total"] == stages["toy_count"]["metrics"]["total"]
        assert summary["prepare/counts/traits"] == stages["prepare"]["counts"]["traits"]
        assert summary["persona_stats/duration_s"] == stages["persona_stats"]["duration_s"]
        assert {summary[f"{s}/status"] for s in stages} == {"ran"}
        assert summary["pipeline/status"] == "finished"
        assert summary["pipeline/run_dir"] == str(sweep.run_dir(persona))

        # training curve on the stage's own step axis: this persona's losses only
        curve = [
            (row["train/persona_stats/global_step"], row["train/persona_stats/loss"])
            for row in run.history
            if "train/persona_stats/loss" in row
        ]
        assert curve == [(step, pytest.approx(loss(persona, step))) for step in (1, 2, 3)]

        # the stage's PNG and CSV outputs, as W&B media files in the run
        image, table = summary["persona_stats/plots/letters"], summary["persona_stats/tables/letters"]
        assert image["_type"] == "image-file" and table["_type"] == "table-file"
        assert (run.path / "files" / image["path"]).read_bytes().startswith(b"\x89PNG")
        assert table["nrows"] == len(set(persona))

        # nothing of the other job: console output of this job only
        assert str(sweep.run_dir(persona)) in run.output
        assert str(sweep.run_dir(other)) not in run.output
        assert other not in run.tags


def test_skipped_stages_are_logged_from_their_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_stages: None
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    cfg = compose_train("+persona=loving", "+model=tiny", f"run_root={tmp_path / 'runs'}", *TOY)
    PipelineRunner(cfg).run()
    PipelineRunner(cfg).run()  # everything is up to date: all stages skipped
    first, second = sorted(flushed_runs(tmp_path / "wandb"), key=lambda run: run.start_time)
    assert first.run_id != second.run_id
    assert first.group == "" and second.job_type == "all"  # outside Hydra: no sweep, no group
    assert second.summary["persona_stats/status"] == "skipped"
    for key in ("persona_stats/name_length", "toy_count/total", "persona_stats/run_id"):
        assert second.summary[key] == first.summary[key]
    assert [
        row["train/persona_stats/loss"] for row in second.history if "train/persona_stats/loss" in row
    ] == [pytest.approx(loss("loving", step)) for step in (1, 2, 3)]


def test_a_failing_stage_marks_the_run_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_stages: None
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        f"run_root={tmp_path / 'runs'}",
        *TOY,
        "+plugin_params.persona_stats.fail=true",
        "wandb.group=failing",
        "wandb.tags=[smoke]",
    )
    with pytest.raises(RuntimeError, match="planted failure"):
        PipelineRunner(cfg).run()
    (run,) = flushed_runs(tmp_path / "wandb")
    assert run.exit_code == 1
    assert run.group == "failing" and run.tags == ["tiny", "loving", "smoke"]
    assert run.summary["toy_count/status"] == "ran"
    assert run.summary["persona_stats/status"] == "failed"
    assert run.summary["pipeline/status"] == "failed"
    assert "planted failure" in run.summary["pipeline/error"]


def test_disabled_mode_neither_imports_wandb_nor_writes(tmp_path: Path) -> None:
    script = f"""
import sys
from character.pipeline import builtin
from character.pipeline.runner import PipelineRunner
import tests.plugins.toy_stages
from tests.config.test_compose import compose_train
cfg = compose_train("+persona=loving", "+model=tiny", "run_root={tmp_path / "runs"}",
                    "plugins=[tests.plugins.toy_stages]", "stage.run=[prepare,toy_rows,toy_count]")
summary = PipelineRunner(cfg).run()
print("statuses", sorted(s["status"] for s in summary["stages"].values()))
print("wandb imported", "wandb" in sys.modules)
"""
    env = {"WANDB_MODE": "disabled", "WANDB_DIR": str(tmp_path / "wandb"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "statuses ['ran', 'ran', 'ran']" in result.stdout
    assert "wandb imported False" in result.stdout
    assert not (tmp_path / "wandb").exists()
    assert not (tmp_path / "runs" / "wandb").exists()


def test_mode_comes_from_the_config_then_the_environment() -> None:
    assert resolve_mode(None, {}) == "offline"
    assert resolve_mode(None, {"WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode(None, {"WANDB_MODE": "dryrun"}) == "offline"
    assert resolve_mode("online", {"WANDB_MODE": "disabled"}) == "online"
    with pytest.raises(CharacterError, match="WANDB_MODE='bogus'.*expected one of"):
        resolve_mode(None, {"WANDB_MODE": "bogus"})


def test_an_unknown_mode_stops_the_job_before_any_stage(tmp_path: Path, plugin_stages: None) -> None:
    cfg = compose_train(
        "+persona=loving", "+model=tiny", f"run_root={tmp_path / 'runs'}", *TOY, "wandb.mode=sometimes"
    )
    with pytest.raises(CharacterError, match="wandb.mode='sometimes'"):
        PipelineRunner(cfg).run()
    assert not (tmp_path / "runs" / "tiny" / "loving" / "prepare").exists()
