"""A single-node SLURM cluster for the tests: started and stopped with scripts/slurm/*.sh, queried with
the ordinary client commands (accounting is off, so squeue and scontrol, never sacct)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "slurm"
# What start_local_cluster.sh needs; the daemons live in /usr/sbin.
BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "scancel")


def missing_binaries() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [name for name in BINARIES if shutil.which(name, path=path) is None]


@dataclass
class LocalSlurm:
    """The cluster living in ``folder``; ``env`` is what a client (or the launcher) needs."""

    folder: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.folder / "slurm.conf")}

    def start(self) -> None:
        _run_script("start_local_cluster.sh", self.folder)

    def stop(self) -> None:
        _run_script("stop_local_cluster.sh", self.folder)

    def command(self, *args: str) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        result = subprocess.run(
            list(args), env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def queue(self) -> list[str]:
        """Job ids in the queue, as squeue prints them: 12, 12_0, or 12_[0-1%2] for pending tasks."""
        return self.command("squeue", "--noheader", "--format=%i").split()

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job``, one record per job (per task for an array). Finished jobs stay
        visible for MinJobAge (10 minutes in the local cluster's slurm.conf)."""
        output = self.command("scontrol", "--oneliner", "show", "job", job_id)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in output.splitlines() if line.strip()]

    def finished_jobs(self, job_id: str, timeout: float = 30) -> list[dict[str, str]]:
        """``jobs(job_id)`` once none is pending, running or completing. The launcher returns as soon
        as the results are written, a moment before SLURM marks the job complete."""
        deadline = time.time() + timeout
        while True:
            records = self.jobs(job_id)
            active = [r for r in records if r["JobState"] in ("PENDING", "RUNNING", "COMPLETING")]
            if not active or time.time() > deadline:
                return records
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the daemons' logs, for failure messages."""
        parts = []
        for log in sorted((self.folder / "log").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _run_script(name: str, folder: Path) -> None:
    started = time.time()
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), str(folder)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    print(f"{name}: {time.time() - started:.1f} s")  # shown with pytest -s
