"""Where the ``persona_shift`` stage records its results, for the report stage to read them
without importing the stage."""

from __future__ import annotations

from pathlib import Path


def results_path(run_dir: Path) -> Path:
    return run_dir / "persona_shift" / "results.json"
