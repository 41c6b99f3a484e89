"""Where a job's run directory is: one per (model, persona), and one per named variant of it.

A variant (``variant=<name>``, set by the ablation presets) is a variation of a (model, persona)
run: it lives inside the main run's folder, at ``<run_root>/<model>/<persona>/variants/<name>``,
so everything about one model and persona stays in one place while ``<run_root>/*/*`` globs (the
robustness launcher's) still see only main runs. Its stages whose fingerprint equals the main
run's are taken from the main run (``character/pipeline/reuse.py``) instead of recomputed.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

VARIANTS = "variants"


def main_run_dir(cfg: DictConfig) -> Path:
    """``<run_root>/<model>/<persona>``: keyed by model and persona, not by time, so a rerun
    continues where the last one stopped."""
    return Path(str(cfg.run_root)) / str(cfg.model.name) / str(cfg.persona.name)


def job_run_dir(cfg: DictConfig) -> Path:
    """The job's own folder: the main run's, or its variant's inside it."""
    variant = cfg.get("variant")
    base = main_run_dir(cfg)
    return base / VARIANTS / str(variant) if variant else base


def stage_folder(run_dir: Path, stage: str) -> Path:
    """Where a stage of the job in ``run_dir`` keeps its outputs and manifest. Stages get their
    inputs' folders from the runner (``ctx.input_dirs``); tools that read finished runs
    (``launchers.compare``, ``launchers.robustness``) find them here, so that no module spells a
    stage's folder by hand."""
    return run_dir / stage
