"""Build the DeepSpeed C++ ops that training on CPU loads, once, at setup.

DeepSpeed compiles its ops on first use (a JIT build into ``~/.cache/torch_extensions``, or
``TORCH_EXTENSIONS_DIR``): on a 2-core machine the first DPO run of a fresh install spent 26 s
building the shared-memory communication op and 40 s building the CPU FusedAdam before its first
step (docs/benchmarks.md). Building them at setup, as DeepSpeed's own pre-build option does at
install time, keeps that out of the first job; later runs load the cached builds either way. On a
GPU machine DeepSpeed's CUDA accelerator builds its own ops; this script only builds what the
accelerator in use asks for.
"""

from __future__ import annotations

import time

from deepspeed.accelerator import get_accelerator

OPS = ("FusedAdamBuilder", "ShareMemCommBuilder")  # what train_dpo / train_sft load on CPU


def main() -> None:
    accelerator = get_accelerator()
    if accelerator.device_name() != "cpu":
        print(f"deepspeed ops: {accelerator.device_name()} accelerator; built on first use")
        return
    for name in OPS:
        builder = accelerator.create_op_builder(name)
        started = time.perf_counter()
        builder.load(verbose=False)
        print(f"deepspeed ops: {builder.NAME} ready in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
