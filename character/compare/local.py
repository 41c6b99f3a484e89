"""Runs from local run directories (``<run_root>/<model>/<persona>/``).

Values come from each finished stage's manifest (the record of what its current output holds),
for the stages listed in ``summary.json``; a stage without a manifest is unfinished and has
nothing to compare.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from character.compare.records import RunRecord, seed_of
from character.errors import CharacterError
from character.io import read_json
from character.pipeline import manifest as mf
from character.pipeline.job_summary import SUMMARY_FILE
from character.pipeline.run_dirs import stage_folder
from character.tracking.keys import stage_values


def find_run_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a run directory, else the run directories of a run root, or of
    the run roots in it (a seed sweep's ``runs/seed${seed}``); hidden folders (``.sweeps``,
    ``.compare``) are not searched."""
    path = Path(path)
    if (path / SUMMARY_FILE).is_file():
        return [path]

    def visible(summary: Path) -> bool:
        return not any(part.startswith(".") for part in summary.relative_to(path).parts)

    found = [s.parent for s in path.glob(f"*/*/{SUMMARY_FILE}") if visible(s)]
    # a stage's own summary.json (coherence/summary.json) is inside a run directory, not one
    found += [
        s.parent
        for s in path.glob(f"*/*/*/{SUMMARY_FILE}")
        if visible(s) and not any(run_dir in s.parents for run_dir in found)
    ]
    found.sort()
    if not found:
        raise CharacterError(
            f"{path} is not a run directory or a run root: expected {path / SUMMARY_FILE}, "
            f"<model>/<persona>/{SUMMARY_FILE} or <run root>/<model>/<persona>/{SUMMARY_FILE} under it "
            "(what launchers.train writes)."
        )
    return found


def read_run_dir(run_dir: Path) -> RunRecord:
    summary_path = run_dir / SUMMARY_FILE
    summary = read_json(summary_path)
    if not isinstance(summary, dict) or "model" not in summary or "persona" not in summary:
        raise CharacterError(
            f"{summary_path} has no model and persona; expected the summary.json of launchers.train."
        )
    values: dict[str, object] = {}
    for stage, entry in summary.get("stages", {}).items():
        manifest = mf.read_manifest(stage_folder(run_dir, stage))
        if manifest is not None:
            values.update(stage_values(stage, entry.get("status", "ran"), manifest))
    return RunRecord(
        model=str(summary["model"]),
        persona=str(summary["persona"]),
        values=values,
        source=str(run_dir),
        time=summary_path.stat().st_mtime,
        seed=_seed(run_dir),
    )


def _seed(run_dir: Path) -> int | None:
    """The seed of the job's last run, from the config it wrote (``config.yaml``)."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return None
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    return seed_of(config) if isinstance(config, dict) else None


def read_local_runs(paths: list[str]) -> list[RunRecord]:
    run_dirs = {run_dir.resolve() for path in paths for run_dir in find_run_dirs(path)}
    return [read_run_dir(run_dir) for run_dir in sorted(run_dirs)]
