"""Run an openrlhf_ext CLI under torchrun / the DeepSpeed launcher from a pipeline stage."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

from tqdm import tqdm

from character.errors import CharacterError
from character.io import read_jsonl
from character.pipeline import console
from character.tracking.redact import Redactor
from openrlhf_ext.launch import die_with_parent, launch_command

# One redraw of a tqdm bar in its default format: "desc:  50%|█████     | 4/8 [00:05<00:05,
# 1.2s/it, loss=1.16, ...]". The trainers' step bars are the ones whose postfix has the loss.
_TQDM_LINE = re.compile(r"^(?P<desc>.*?): *\d+%\|[^|]*\| *(?P<n>\d+)/(?P<total>\d+) \[(?P<info>[^\]]*)\]")
_LOSS = re.compile(r", (?:loss|gpt_loss)=(?P<loss>[^,\]]+)")


class TrainerProgress:
    """Mirrors the trainer subprocess's step bar (DPO or SFT) as a bar of ours with its loss.

    The subprocess's own output goes to its log file; reading its bar back from that output keeps
    the trainers (ours and OpenRLHF's) unaware of the console. Both trainers' bars count
    micro-batches (an optimizer step is ``batch_size / micro_batch_size`` of them), hence the unit.
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.bar: tqdm | None = None
        self.desc: str | None = None

    def feed(self, line: str) -> None:
        match = _TQDM_LINE.search(line)
        loss = _LOSS.search(match["info"]) if match else None
        if match is None or loss is None:
            return
        n, total, desc = int(match["n"]), int(match["total"]), match["desc"].strip()
        if self.bar is None:
            self.bar = console.progress(total=total, desc=f"{self.stage} ({desc})", unit="batch")
        elif desc != self.desc:  # the next epoch's bar
            self.bar.reset(total=total)
            self.bar.set_description(f"{self.stage} ({desc})", refresh=False)
        self.desc = desc
        self.bar.set_postfix_str(f"loss={loss['loss'].strip()}", refresh=False)
        self.bar.update(n - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_training(module: str, argv: list[str], log_path: Path, launcher: str, log: logging.Logger) -> None:
    """Start the trainer; its whole output goes to ``log_path`` and, as records of the
    ``trainer.<stage>`` logger, to the stage's log file (and the console when ``verbose``, as it
    always did); a quiet console shows a bar of its steps and loss instead. Fail clearly."""
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
    stage = log_path.parent.name
    output = logging.getLogger(f"trainer.{stage}")
    trainer_progress = None if console.is_verbose() else TrainerProgress(stage)
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        # Text mode reads a bar's redraws (carriage returns) as lines of their own.
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
            env=console.subprocess_environment(),
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                handle.write(line)
                output.info("%s", line.rstrip("\n"))
                if trainer_progress is not None:
                    trainer_progress.feed(line)
            returncode = process.wait()
        finally:
            if trainer_progress is not None:
                trainer_progress.close()
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
