"""Freed host memory goes back to the system (openrlhf_ext/host_memory.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from openrlhf_ext.cli.train_dpo import parse_args
from openrlhf_ext.cpu_runtime import activate_if_no_cuda
from tests.conftest import REPO

activate_if_no_cuda()  # parse_args imports OpenRLHF, which needs flash-attn's stand-in on CPU

# Run in a fresh interpreter: in a long test session the heap already holds freed chunks that the
# allocation below would reuse, so the resident growth it measures depended on earlier tests.
MEASURE = """
import json, os
import torch
from openrlhf_ext.host_memory import release_free_host_memory

def resident_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

# 4,000 tensors of 100 kB: below glibc's mmap threshold, so they live in the heap; the last one
# stays alive, so the heap's top cannot shrink on free and the freed 400 MB stay resident.
before = resident_mb()
tensors = [torch.ones(25_000) for _ in range(4000)]
last = tensors[-1]
del tensors
held = resident_mb() - before
released = release_free_host_memory()
after = resident_mb() - before
print(json.dumps({"held": held, "released": released, "after": after, "last_sum": float(last.sum())}))
"""


def test_freed_tensors_stay_resident_until_released() -> None:
    run = subprocess.run(
        [sys.executable, "-c", MEASURE], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    mb = json.loads(run.stdout.strip().splitlines()[-1])
    assert mb["held"] > 300, f"glibc returned the freed heap by itself ({mb['held']:.0f} MB still resident)"
    assert mb["released"]
    assert mb["after"] < mb["held"] - 300, mb
    assert mb["last_sum"] == 25_000.0  # the live tensor is untouched


def test_the_cli_hands_memory_back_after_each_pass_unless_told_otherwise(tmp_path) -> None:
    common = ["--model.model_name_or_path", str(tmp_path), "--data.dataset", str(tmp_path)]
    assert parse_args(common).memory.release_freed_pages == "pass"
    for point in ("step", "never"):
        assert (
            parse_args([*common, "--memory.release_freed_pages", point]).memory.release_freed_pages == point
        )


def test_the_cli_rejects_an_unknown_release_point(tmp_path, capsys) -> None:
    common = ["--model.model_name_or_path", str(tmp_path), "--data.dataset", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        parse_args([*common, "--memory.release_freed_pages", "always"])
    assert exited.value.code != 0
    assert "invalid choice: 'always'" in capsys.readouterr().err


@pytest.mark.parametrize(("point", "expected"), [("pass", 16), ("step", 2), ("never", 0)])
def test_releases_per_two_optimizer_steps(monkeypatch, point: str, expected: int) -> None:
    """Two optimizer steps of four micro-batches each, one backward pass per micro-batch: the
    trainer's release calls in the order ``fit`` and ``forward_backward`` make them."""
    import openrlhf_ext.trainer as trainer_module  # after the CPU runtime is active (top of module)

    released = []
    monkeypatch.setattr(trainer_module, "release_free_host_memory", lambda: released.append(1))
    trainer = trainer_module.CharacterDPOTrainer.__new__(trainer_module.CharacterDPOTrainer)
    trainer.release_freed_pages = point
    accumulation = 4
    for step in range(1, 2 * accumulation + 1):
        trainer._release_after_pass()
        trainer._release_after_optimizer_call(boundary=step % accumulation == 0)
    assert len(released) == expected
