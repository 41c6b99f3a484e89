"""launchers.compare over a real seed sweep (a run root per seed): every seed is kept, the tables
show the mean, and the spread table agrees with numpy on the runs' own metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from character.compare.local import find_run_dirs
from character.compare.records import RunRecord, latest_per_job, latest_per_pair
from character.compare.report import compare
from character.io import read_json
from tests.compare.test_compare import config
from tests.conftest import run_cli

SEEDS = (0, 1, 2)
ROWS = 10  # toy_rows' default


def test_a_seed_sweep_is_compared_seed_by_seed(tmp_path: Path) -> None:
    run_root = tmp_path / "runs"
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "plugins=[tests.plugins.toy_stages]",
        "stage.run=[prepare,toy_rows,toy_count]",
        "seed=" + ",".join(map(str, SEEDS)),
        f"run_root={run_root}/seed${{seed}}",
        "-m",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    totals = [
        read_json(run_root / f"seed{seed}" / "tiny" / "loving" / "summary.json")["stages"]["toy_count"][
            "metrics"
        ]["total"]
        for seed in SEEDS
    ]
    # toy_rows writes index**2 + seed per row: the totals differ by ROWS per seed
    assert totals == [sum(i * i for i in range(ROWS)) + ROWS * seed for seed in SEEDS]

    # the folder holding the seeds' run roots is found whole
    comparison = compare(config(tmp_path / "out", runs=[str(run_root)]))
    frame = comparison.frame
    assert frame["seed"].tolist() == list(SEEDS)  # one row per seed, none replaced by another
    assert frame["toy_count/total"].tolist() == totals
    markdown = comparison.markdown
    assert "# Persona x model comparison: 3 runs (1 personas x 1 models)" in markdown
    section = markdown.split("## toy_count/total\n", 1)[1].split("\n## ", 1)[0]
    mean_row, spread_row = (line for line in section.splitlines() if line.startswith("| loving"))
    assert [cell.strip() for cell in mean_row.strip("|").split("|")] == ["loving", f"{np.mean(totals):.4g}"]
    cells = [cell.strip() for cell in spread_row.strip("|").split("|")]
    assert cells[:3] == ["loving", "tiny", "3"]
    assert [float(c) for c in cells[3:]] == pytest.approx(
        [np.mean(totals), np.std(totals, ddof=1), min(totals), max(totals)], rel=1e-3
    )
    assert "mean over a pair's seeds" in markdown


def record(seed: int | None, time: float, source: str) -> RunRecord:
    return RunRecord("tiny", "loving", {"x/y": time}, source, time, seed=seed)


def test_a_rerun_replaces_its_own_seed_only() -> None:
    records = [record(0, 1.0, "a"), record(1, 2.0, "b"), record(0, 3.0, "c")]
    assert [(r.seed, r.source) for r in latest_per_job(records)] == [(0, "c"), (1, "b")]
    # the views show one run per pair: the latest of its seeds
    assert [r.source for r in latest_per_pair(records)] == ["c"]


def test_run_roots_inside_a_folder_are_found_but_not_a_stage_s_own_summary(tmp_path: Path) -> None:
    for root in ("seed0", "seed1"):
        run_dir = tmp_path / root / "tiny" / "loving"
        (run_dir / "coherence").mkdir(parents=True)
        (run_dir / "summary.json").write_text("{}")
        (run_dir / "coherence" / "summary.json").write_text("{}")  # a stage output, not a run
    (tmp_path / ".compare" / "x" / "y").mkdir(parents=True)
    (tmp_path / ".compare" / "x" / "y" / "summary.json").write_text("{}")
    assert find_run_dirs(tmp_path) == [tmp_path / f"seed{s}" / "tiny" / "loving" for s in (0, 1)]
    assert find_run_dirs(tmp_path / "seed0") == [tmp_path / "seed0" / "tiny" / "loving"]
