"""The named outputs of the ``prepare`` stage: the model and the constitution it records.

Here rather than on ``PrepareStage`` (which inherits them) so that every stage, and
``trained_model``, reads them without importing the stage module: no stage module imports another
(tests/test_import_graph.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.io import read_json

STAGE = "prepare"  # the stage's name, and so its folder in a run
MODEL_FILE = "model.json"
PERSONA_FILE = "persona.json"


class PrepareOutputs:
    @staticmethod
    def folder(run_dir: Path) -> Path:
        """The prepare stage's folder in ``run_dir`` (e.g. of another run, for sft_data)."""
        return run_dir / STAGE

    @staticmethod
    def model(prepare_dir: Path) -> dict[str, Any]:
        """The model this job trains, as recorded: name, path of its weights, assistant_name, ..."""
        return read_json(prepare_dir / MODEL_FILE)

    @staticmethod
    def persona(prepare_dir: Path) -> dict[str, Any]:
        """The constitution this job trains, as recorded."""
        return read_json(prepare_dir / PERSONA_FILE)
