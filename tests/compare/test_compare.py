"""launchers.compare on a real 2-persona toy sweep, from run directories and from offline W&B runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from omegaconf import OmegaConf

from character.compare.config import CompareConfig
from character.compare.report import compare
from character.errors import CharacterError
from tests.conftest import REPO
from tests.tracking.sweep import PERSONAS, ToySweep

# Metrics of the toy sweep, with the summary.json entry each comes from.
EXPECTED = {
    "toy_count/total": ("toy_count", "total"),
    "persona_stats/name_length": ("persona_stats", "name_length"),
    "persona_stats/final_loss": ("persona_stats", "final_loss"),
}


def compare_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "launchers.compare", *args], cwd=REPO, capture_output=True, text=True
    )


def config(out_dir: Path, **values) -> CompareConfig:
    return OmegaConf.merge(OmegaConf.structured(CompareConfig), {"out_dir": str(out_dir), **values})


def table_rows(markdown: str, metric: str) -> dict[str, str]:
    """persona -> the cell of model tiny, from the metric's persona x model table."""
    section = markdown.split(f"## {metric}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.strip().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    return {row[0]: row[header.index("tiny")] for row in rows}


def check_report(markdown: str, out_dir: Path, sweep: ToySweep) -> None:
    for metric, (stage, name) in EXPECTED.items():
        rows = table_rows(markdown, metric)
        assert sorted(rows) == sorted(PERSONAS)
        for persona in PERSONAS:
            expected = sweep.summary(persona)["stages"][stage]["metrics"][name]
            assert float(rows[persona]) == pytest.approx(expected, rel=1e-3)
    assert "## persona_stats/spearman/before ~ after (like)" in markdown  # nested metrics, flattened
    assert "counts/" not in markdown and "duration_s" not in markdown  # only metrics by default
    assert (out_dir / "comparison.md").read_text() == markdown
    frame = pd.read_csv(out_dir / "comparison.csv")
    assert sorted(frame["persona"]) == sorted(PERSONAS)
    for persona in PERSONAS:
        row = frame[frame["persona"] == persona].iloc[0]
        for metric, (stage, name) in EXPECTED.items():
            assert row[metric] == pytest.approx(sweep.summary(persona)["stages"][stage]["metrics"][name])
    plot = out_dir / "plots" / "persona_stats__name_length.png"
    assert matplotlib.image.imread(plot).ndim == 3  # a real PNG image


def test_compare_local_run_directories(sweep: ToySweep, tmp_path: Path) -> None:
    result = compare_cli(f"runs=[{sweep.run_root}]", f"out_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown in result.stdout  # printed as written
    check_report(markdown, tmp_path, sweep)


def test_compare_offline_wandb_runs_gives_the_same_tables(sweep: ToySweep, tmp_path: Path) -> None:
    result = compare_cli(
        f"wandb_offline=[{sweep.wandb_dir}]", f"wandb_group={sweep.sweep_dir.name}", f"out_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown in result.stdout
    check_report(markdown, tmp_path, sweep)
    local = compare(config(tmp_path / "local", runs=[str(sweep.run_root)])).markdown
    # the same tables, whatever the source (only the "Sources:" line differs)
    assert local.split("\n## ", 1)[1] == markdown.split("\n## ", 1)[1]


def test_metric_patterns_and_counts(sweep: ToySweep, tmp_path: Path) -> None:
    result = compare(
        config(
            tmp_path, runs=[str(sweep.run_dir(p)) for p in PERSONAS], metrics=["persona_stats/*"], counts=True
        )
    )
    columns = [c for c in result.frame.columns if c not in ("persona", "model", "seed", "source")]
    assert columns == sorted(columns) and set(columns) == {
        "persona_stats/counts/letters",
        "persona_stats/final_loss",
        "persona_stats/name_length",
        "persona_stats/spearman/before ~ after (like)",
        "persona_stats/token_length",
    }
    assert result.frame.set_index("persona")["persona_stats/counts/letters"].to_dict() == {
        persona: len(set(persona)) for persona in PERSONAS
    }


def test_bad_inputs_are_named(sweep: ToySweep, tmp_path: Path) -> None:
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    with pytest.raises(CharacterError, match=f"{not_a_run} is not a run directory or a run root"):
        compare(config(tmp_path / "o1", runs=[str(not_a_run)]))
    with pytest.raises(CharacterError, match=f"{not_a_run} holds no W&B runs"):
        compare(config(tmp_path / "o2", wandb_offline=[str(not_a_run)]))
    with pytest.raises(CharacterError, match="no runs to compare: set runs="):
        compare(config(tmp_path / "o3"))
    with pytest.raises(CharacterError, match="no runs to compare"):
        compare(config(tmp_path / "o4", wandb_offline=[str(sweep.wandb_dir)], wandb_group="no-such-group"))
    with pytest.raises(
        CharacterError, match=r"metrics lists \['dpo/final_loss'\].*persona_stats/name_length"
    ):
        compare(config(tmp_path / "o5", runs=[str(sweep.run_root)], metrics=["dpo/final_loss"]))
    result = compare_cli(f"runs=[{not_a_run}]", f"out_dir={tmp_path / 'o6'}")
    assert result.returncode == 2 and "error:" in result.stderr and str(not_a_run) in result.stderr
