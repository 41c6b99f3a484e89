"""Append each logged training step to a JSONL file, so the pipeline can report losses without
parsing progress bars or TensorBoard event files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_metrics(path: str | Path | None, global_step: int, logs: dict[str, Any], is_rank_0: bool) -> None:
    if path is None or not is_rank_0:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"global_step": global_step, **{k: float(v) for k, v in logs.items()}}
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def record_sft_metrics(path: str | Path | None) -> None:
    """Make OpenRLHF's SFT trainer append what it logs at each step to ``path``."""
    from openrlhf.trainer.sft_trainer import SFTTrainer

    original = SFTTrainer.save_logs_and_checkpoints

    def save_logs_and_checkpoints(self, args, global_step, step_bar, logs_dict=None, client_states=None):
        append_metrics(path, global_step, logs_dict or {}, self.strategy.is_rank_0())
        return original(self, args, global_step, step_bar, logs_dict, client_states)

    SFTTrainer.save_logs_and_checkpoints = save_logs_and_checkpoints
