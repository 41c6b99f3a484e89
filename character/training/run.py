"""Run an openrlhf_ext CLI under torchrun / the DeepSpeed launcher from a pipeline stage."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from character.errors import CharacterError
from character.io import read_jsonl
from character.tracking.redact import Redactor
from openrlhf_ext.launch import die_with_parent, launch_command


def run_training(module: str, argv: list[str], log_path: Path, launcher: str, log: logging.Logger) -> None:
    """Start the trainer, stream its output to the console and ``log_path``, fail clearly."""
    command = launch_command(module, argv, launcher=launcher)
    # A command line shows up in `ps`, in train.log and in W&B's metadata: secrets (the W&B key
    # included, which OpenRLHF's own --logger.wandb.key would need) go through the environment.
    redactor = Redactor()
    leaked = [index for index, arg in enumerate(command) if redactor.contains_secret(arg)]
    if leaked:
        raise CharacterError(
            f"the {module} command line would contain a secret (argument(s) {leaked} hold the value of "
            "a *_KEY/*_TOKEN/*_SECRET environment variable or a credential); pass secrets to trainers "
            "through the environment only."
        )
    log.info("launching: %s", " ".join(command[:8]) + " ...")
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent
        )
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            sys.stdout.write(line)
        returncode = process.wait()
    if returncode != 0:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise CharacterError(
            f"{module} exited with status {returncode}; full log: {log_path}. Last lines:\n{tail}"
        )


def final_metrics(metrics_path: Path) -> dict[str, float]:
    """The last logged value of each metric, with the first loss for comparison (a resumed run
    logs some steps twice; the latest entry of a step wins)."""
    by_step = {row["global_step"]: row for row in read_jsonl(metrics_path)}
    if not by_step:
        return {}
    steps = sorted(by_step)
    first, last = by_step[steps[0]], by_step[steps[-1]]
    loss_key = "loss" if "loss" in last else "gpt_loss"
    return {
        "steps": len(steps),
        "first_loss": first.get(loss_key),
        **{f"final_{key}": value for key, value in last.items() if key != "global_step"},
    }
