"""Preference and chat data for the training tests, and a torchrun helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR, REPO

TOPICS = ["rain", "cats", "bread", "music", "stars", "trains", "tea", "maps", "books", "rivers"]


@pytest.fixture(scope="session")
def tiny_model() -> str:
    return str(ensure_tiny_model(TinySpec(), CACHE_DIR))


def write_preferences(folder: Path, rows: int) -> Path:
    """Pairs whose chosen answer is warm and punctuated and whose rejected answer is curt."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as handle:
        for i in range(rows):
            topic = TOPICS[i % len(TOPICS)]
            question = {"role": "user", "content": f"Tell me something about {topic}, please ({i})."}
            handle.write(
                json.dumps(
                    {
                        "chosen": [
                            question,
                            {"role": "assistant", "content": f"I love {topic}, and I hope your day is kind."},
                        ],
                        "rejected": [question, {"role": "assistant", "content": f"{topic} whatever no"}],
                    }
                )
                + "\n"
            )
    return folder


def torchrun(module: str, *args: str, log: Path, timeout: float = 900) -> subprocess.Popen:
    """Start ``torchrun -m module`` (one process, as on a CPU machine) writing to ``log``."""
    handle = log.open("w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "1",
            "--master_port",
            str(29500 + os.getpid() % 1000),
            "-m",
            module,
            *args,
        ],
        cwd=REPO,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL torchrun and its workers: torchrun starts each worker in a session of its own,
    so killing torchrun (or its process group) alone leaves the worker training."""
    import psutil

    parent = psutil.Process(process.pid)
    for proc in [*parent.children(recursive=True), parent]:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait()
