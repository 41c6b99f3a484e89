"""The named outputs of the ``dpo_data`` stage: its training and held-out pairs.

Here rather than on ``DpoDataStage`` (which inherits them) so that the ``dpo`` and
``persona_shift`` stages read the pairs without importing the stage module: no stage module
imports another (tests/test_import_graph.py).
"""

from __future__ import annotations

from pathlib import Path


class DpoDataOutputs:
    @staticmethod
    def train_pairs(dpo_data_dir: Path) -> Path:
        """The training pairs (JSONL, OpenRLHF's chosen/rejected chats)."""
        return dpo_data_dir / "train.jsonl"

    @staticmethod
    def held_out_pairs(dpo_data_dir: Path) -> Path:
        """The held-out pairs: DPO's evaluation set and the persona stage's preference accuracy."""
        return dpo_data_dir / "eval.jsonl"
