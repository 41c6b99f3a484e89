"""Hydra's own `hydra/launcher=submitit_local` runs a sweep's jobs as local processes, no SLURM: the
same submitit path (pickled job, sweep folder, results), e.g. to check a sweep before a cluster."""

from __future__ import annotations

from pathlib import Path

from character.io import read_json
from tests.conftest import run_cli


def test_a_sweep_through_submitit_local_finishes_both_runs(run_root: Path) -> None:
    result = run_cli(
        "+persona=loving,sarcastic",
        "+model=tiny",
        "scale=ci",
        "+stage=prepare",
        "hydra/launcher=submitit_local",
        "-m",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for persona in ("loving", "sarcastic"):
        summary = read_json(run_root / "tiny" / persona / "summary.json")
        assert summary["stages"]["prepare"]["status"] == "ran"
    (sweep,) = (run_root / ".sweeps").iterdir()
    results = sorted(path.name for path in (sweep / ".submitit").glob("*/*_result.pkl"))
    assert len(results) == 2, results
