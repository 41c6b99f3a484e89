"""Command lines that start our CLIs under torchrun or the DeepSpeed launcher.

One process per visible GPU, or one process on a CPU machine; ``--standalone`` (torchrun) picks
a free rendezvous port, so several jobs on one node do not collide.
"""

from __future__ import annotations

import ctypes
import signal
import sys


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_command(
    module: str, args: list[str], launcher: str = "torchrun", nproc: int | None = None
) -> list[str]:
    processes = nproc or max(1, visible_gpus())
    if launcher == "torchrun":
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            module,
            *args,
        ]
    if launcher == "deepspeed":
        return [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus",
            str(processes),
            "--module",
            module,
            *args,
        ]
    raise ValueError(f"launcher={launcher!r}; expected 'torchrun' or 'deepspeed'")


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (PR_SET_PDEATHSIG).

    Used as ``preexec_fn`` for torchrun and called by our CLIs in the workers torchrun starts, so
    that killing a pipeline job (even with SIGKILL) never leaves a trainer running that would
    keep writing the checkpoints its rerun resumes from. A no-op where prctl is unavailable.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
