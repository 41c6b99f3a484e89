"""The job's console (character/pipeline/console.py): quiet by default, everything with verbose=true,
and a failing stage still names its error and the log file that holds the details.

The CLI runs here use a plugin stage that makes library noise (tests/plugins/noisy_stage.py), so
each takes seconds; tests/test_pipeline_e2e.py checks the console of the real tiny job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from character.pipeline import console
from character.training.run import TrainerProgress
from tests.conftest import run_cli
from tests.plugins.noisy_stage import MARKS

NOISY = ("+persona=loving", "+model=tiny", "plugins=[tests.plugins.noisy_stage]", "stage.run=[noisy]")


def _noisy(run_root: Path, *overrides: str):
    return run_cli(*NOISY, *overrides, env={"CHARACTER_RUN_ROOT": str(run_root)})


def test_the_quiet_console_shows_the_stage_and_the_log_file_keeps_the_noise(run_root: Path) -> None:
    result = _noisy(run_root)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    run_dir = run_root / "tiny" / "loving"
    assert "[1/1] noisy: running" in printed and "[1/1] noisy: ran in" in printed
    assert f"results  {run_dir}" in printed and f"logs     {run_dir / 'logs'}" in printed
    assert len(printed.splitlines()) <= 8, printed
    log = (run_dir / "logs" / "noisy.log").read_text()
    for mark in MARKS.values():
        assert mark not in printed, mark
        assert mark in log, mark


def test_verbose_shows_everything(run_root: Path) -> None:
    result = _noisy(run_root, "verbose=true")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    for mark in MARKS.values():
        assert mark in printed, mark
    assert "[1/1] noisy: ran in" in printed
    assert MARKS["info"] in (run_root / "tiny" / "loving" / "logs" / "noisy.log").read_text()


def test_a_crashing_stage_names_its_error_and_its_log_file(run_root: Path) -> None:
    result = _noisy(run_root, "+plugin_params.noisy.fail=crash")
    assert result.returncode == 1
    printed = result.stdout + result.stderr
    log_path = run_root / "tiny" / "loving" / "logs" / "noisy.log"
    assert "[1/1] noisy: FAILED after" in printed and "NOISE-crash" in printed, printed
    assert f"details: {log_path}" in printed
    log = log_path.read_text()
    assert "Traceback" in log and "RuntimeError: NOISE-crash" in log
    assert MARKS["print"] not in printed


def test_a_user_error_in_a_stage_is_still_a_short_message_and_exit_2(run_root: Path) -> None:
    result = _noisy(run_root, "+plugin_params.noisy.fail=user")
    assert result.returncode == 2
    assert "error: NOISE-user-error: the noisy stage was told to fail" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "details: " in result.stdout


def test_the_console_filter_levels() -> None:
    def shown(name: str, level: int, **extra: object) -> bool:
        record = logging.LogRecord(name, level, __file__, 1, "m", None, None)
        record.__dict__.update(extra)
        return console.ConsoleFilter().filter(record)

    assert shown("console", logging.INFO)
    assert not shown("character.stage.teacher", logging.INFO)
    assert shown("character.stage.teacher", logging.WARNING)
    assert not shown("vllm.engine", logging.WARNING) and not shown("DeepSpeed", logging.WARNING)
    assert shown("vllm.engine", logging.ERROR)
    assert not shown("character.pipeline", logging.ERROR, console=False)  # a traceback for the file


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (  # our DPO trainer's bar (openrlhf_ext/trainer.py): micro-batches, loss first in the postfix
            [
                "DPO epoch 0:   0%|          | 0/8 [00:00<?, ?it/s]",
                "DPO epoch 0:  12%|█▎        | 1/8 [00:01<00:08,  1.17s/it, loss=1.1, dpo_loss=0.693, acc=0]",
                "Eval stage of global_step 4: 100%|██████████| 2/2 [00:00<00:00, 2.24it/s, eval_loss=0.692]",
                "DPO epoch 0:  50%|█████     | 4/8 [00:05<00:05,  1.43s/it, loss=1.06, dpo_loss=0.693]",
            ],
            (4, 8, "loss=1.06"),
        ),
        (  # OpenRLHF's SFT trainer: the epoch bar has no loss, the step bar's postfix starts with it
            [
                "Train epoch:   0%|          | 0/1 [00:00<?, ?it/s]",
                "Train step of epoch 0:  50%|█████     | 1/2 [00:01<00:01, gpt_loss=4.32, lr=5e-5]",
            ],
            (1, 2, "loss=4.32"),
        ),
    ],
)
def test_the_trainer_bar_is_read_back_with_its_loss(lines: list[str], expected: tuple) -> None:
    progress = TrainerProgress("dpo")
    for line in lines:
        progress.feed(line + "\n")
    assert progress.bar is not None
    n, total, postfix = expected
    assert (progress.bar.n, progress.bar.total, progress.bar.postfix) == (n, total, postfix)
    progress.close()
