"""``launchers.evaluate`` and ``launchers.robustness`` check values as ``launchers.train`` does, and a
sweep is checked before Hydra creates its folder: exit status 2, one message, nothing created."""

from __future__ import annotations

import logging
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


@pytest.fixture
def launch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Run ``python -m launchers.<name> <args>`` in this process: (exit status, what it printed)."""
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(name: str, *args: str) -> tuple[int, str]:
        script = REPO / "launchers" / f"{name}.py"
        monkeypatch.setattr(sys, "argv", [str(script), *args])
        code: int | str | None = 0
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        return int(code or 0), captured.out + captured.err

    yield run
    HydraConfig.instance().cfg = None
    root.handlers[:], root.level = handlers, level


def test_evaluate_refuses_bad_values_before_creating_its_folder(launch, tmp_path: Path) -> None:
    out_dir = tmp_path / "evals"
    code, output = launch(
        "evaluate",
        f"out_dir={out_dir}",
        "engines.judge.model=judge",
        "engine@engines.judge=openai",
        "engines.judge.base_url=http://127.0.0.1:9/v1",
        "subjects=[{name: before, model: m}]",
        "seed=-1",
        "preferences.sampling.top_p=0",
    )
    assert code == 2, output
    assert "Traceback" not in output
    assert "seed=-1 (from the command line): expected an integer >= 0" in output
    assert "preferences.sampling.top_p=0.0" in output and "a number in (0, 1]" in output
    assert not out_dir.exists()


def test_robustness_refuses_bad_values_before_writing(launch, tmp_path: Path) -> None:
    out_dir = tmp_path / "robustness"
    code, output = launch(
        "robustness", f"out_dir={out_dir}", "classifier.learning_rate=0", "classifier.heldout_fraction=1"
    )
    assert code == 2, output
    assert "classifier.learning_rate=0.0" in output and "a number > 0" in output
    assert "classifier.heldout_fraction=1.0" in output and "in [0, 1)" in output
    assert not out_dir.exists()


def test_a_sweep_with_a_bad_value_creates_no_sweep_folder(run_root: Path) -> None:
    result = run_cli("+persona=loving,sarcastic", "+model=tiny", "stages.dpo.beta=-1", "-m")
    assert result.returncode == 2, result.stderr
    assert "stages.dpo.beta=-1.0 (from the command line): expected a number > 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_root.exists()  # no .sweeps/<time>, no run directory


def test_a_sweep_whose_jobs_share_a_run_directory_is_refused(run_root: Path) -> None:
    # seed is not part of the run directory: the two jobs would overwrite each other's stages.
    result = run_cli("+persona=loving", "+model=tiny", "seed=0,1", "+stage=prepare", "-m")
    assert result.returncode == 2, result.stderr
    assert f"two jobs of this sweep would write the same run directory {run_root.resolve()}/tiny/loving" in (
        result.stderr
    )
    assert "(they differ in seed=0 seed=1)" in result.stderr
    assert "'run_root=runs/seed${seed}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_root.exists()


def test_a_seed_sweep_with_a_run_root_per_seed_runs_each_job_in_its_own_folder(run_root: Path) -> None:
    # The interpolation is each job's: the check must not resolve it in the submitting config.
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "seed=0,1",
        f"run_root={run_root}/seed${{seed}}",
        "+stage=prepare",
        "-m",
    )
    assert result.returncode == 0, result.stderr
    for seed in (0, 1):
        run_dir = run_root / f"seed{seed}" / "tiny" / "loving"
        assert (run_dir / "prepare" / "manifest.json").exists(), sorted(map(str, run_root.rglob("*.json")))
        assert f"\nseed: {seed}\n" in (run_dir / "config.yaml").read_text()
