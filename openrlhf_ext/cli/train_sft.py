"""SFT on OpenRLHF + DeepSpeed (GPU or CPU): upstream's ``openrlhf.cli.train_sft``, unchanged,
with the CPU runtime support installed first and sdpa attention by default on CPU.

    torchrun --nproc_per_node 1 -m openrlhf_ext.cli.train_sft --data.multiturn ...

One extra flag: ``--logger.metrics_file PATH`` appends each logged step (loss, lr, ...) as JSON.

Multi-turn chat transcripts (``--data.multiturn --data.apply_chat_template``) put every
assistant turn in the loss and nothing else (tests/openrlhf_ext/test_sft.py checks the mask token
by token against the chat template).
"""

from __future__ import annotations

import runpy
import sys

from openrlhf_ext.cpu_runtime import (
    activate_if_no_cuda,
    default_attn_implementation,
    provide_flash_attn_helpers,
)
from openrlhf_ext.launch import die_with_parent
from openrlhf_ext.metrics_log import record_sft_metrics


def _pop_metrics_file(args: list[str]) -> str | None:
    """Our one extra flag, ``--logger.metrics_file PATH``, removed before upstream parses."""
    if "--logger.metrics_file" not in args:
        return None
    index = args.index("--logger.metrics_file")
    path = args[index + 1]
    del args[index : index + 2]
    return path


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    provide_flash_attn_helpers()
    activate_if_no_cuda()
    args = list(sys.argv[1:] if argv is None else argv)
    record_sft_metrics(_pop_metrics_file(args))
    if not any(arg.startswith("--ds.attn_implementation") for arg in args):
        args += ["--ds.attn_implementation", default_attn_implementation()]
    sys.argv = ["openrlhf.cli.train_sft", *args]
    runpy.run_module("openrlhf.cli.train_sft", run_name="__main__")


if __name__ == "__main__":
    main()
