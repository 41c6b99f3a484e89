"""Where the ``persona_shift`` stage records its results, for the report stage to read them
without importing the stage."""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = "results.json"
# One row per default-split answer: method, prompt_index, repetition, base_perplexity, words.
QUALITY_FILE = "quality.jsonl"


def results_path(persona_shift_dir: Path) -> Path:
    """The persona measures (``results.json``) of a finished persona_shift stage."""
    return persona_shift_dir / RESULTS_FILE
