"""A `python -m launchers.train ... -m` process running in the background while a test watches SLURM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import REPO
from tests.slurm.cluster import LocalSlurm

T = TypeVar("T")
# Without accounting, submitit cannot see that a job ended without writing its result (a crash, a
# sys.exit in the job): its launcher would wait forever. A queue empty for this long means that.
EMPTY_QUEUE_GRACE_S = 20


class Launch:
    """The Hydra submitit launcher, started like a user would; it returns when every job is done."""

    def __init__(self, overrides: tuple[str, ...], log: Path, slurm: LocalSlurm) -> None:
        self.log = log
        self.slurm = slurm
        self.seen_jobs: set[str] = set()  # every id squeue showed while we watched
        self._empty_since: float | None = None
        with log.open("w") as out:
            # The test's environment (offline, cache, run root, SLURM_CONF) is the submitting
            # shell's, which sbatch exports to the jobs.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "launchers.train", *overrides, "-m"],
                cwd=REPO,
                env=dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def job_errors(self, lines: int = 15) -> str:
        """The end of every job's stderr in the sweep folders (where a job's traceback lands)."""
        sweeps = Path(os.environ["CHARACTER_RUN_ROOT"]) / ".sweeps"
        parts = []
        for log in sorted(sweeps.glob("*/.submitit/*/*_log.err")):
            parts.append(
                f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            )
        return "\n".join(parts)

    def _failure(self, what: str) -> str:
        return f"{what}\n--- launcher output\n{self.output()}\n{self.job_errors()}\n{self.slurm.log_tail()}"

    def _watch(self) -> None:
        """Record the queue; fail if the launcher waits on jobs that are no longer there."""
        queue = self.slurm.queue()
        self.seen_jobs.update(queue)
        if queue or not self.seen_jobs:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = time.time()
        elif time.time() - self._empty_since > EMPTY_QUEUE_GRACE_S:
            pytest.fail(self._failure("the jobs left the queue but the launcher still waits for results"))

    def wait_until(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        """Poll ``condition`` while the launcher runs; return its first truthy value."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = condition()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(self._failure(f"the launcher exited ({self.process.returncode}) before {what}"))
            self._watch()
            time.sleep(0.25)
        pytest.fail(self._failure(f"timed out after {timeout:.0f} s waiting for {what}"))

    def wait(self, timeout: float) -> int:
        """Wait for the launcher to return; its exit status."""
        deadline = time.time() + timeout
        while self.process.poll() is None:
            if time.time() > deadline:
                pytest.fail(self._failure(f"the launcher did not return in {timeout:.0f} s"))
            self._watch()
            time.sleep(0.5)
        return self.process.returncode

    def stop(self) -> None:
        """Kill the launcher if it still runs, and cancel the jobs it left in the queue."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for job in self.slurm.queue():
            self.slurm.command("scancel", job.split("_[")[0])
