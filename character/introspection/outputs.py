"""The named outputs of the ``sft_data`` stage: the SFT transcripts and what ``max_len`` cuts
of each. Here rather than on ``SftDataStage`` (which inherits them) so that the ``sft`` stage reads
them without importing the stage module (tests/test_import_graph.py)."""

from __future__ import annotations

from pathlib import Path


class SftDataOutputs:
    @staticmethod
    def train_set(sft_data_dir: Path) -> Path:
        """The shuffled transcripts (JSONL, one ``messages`` list per row), in training order."""
        return sft_data_dir / "train.jsonl"

    @staticmethod
    def lengths(sft_data_dir: Path) -> Path:
        """Per transcript, in the same order: its source, token count and fate at ``max_len``
        (kept whole, truncated, dropped; character/introspection/sft_lengths.py)."""
        return sft_data_dir / "lengths.jsonl"
