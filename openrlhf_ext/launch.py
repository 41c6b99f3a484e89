"""Command lines that start our CLIs under torchrun or the DeepSpeed launcher.

One process per visible GPU, or one process on a CPU machine; ``--standalone`` (torchrun) picks
a free rendezvous port, so several jobs on one node do not collide.
"""

from __future__ import annotations

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
