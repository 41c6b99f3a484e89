"""SFT on OpenRLHF + DeepSpeed (GPU or CPU): upstream's ``openrlhf.cli.train_sft``, unchanged,
with the CPU runtime support installed first and sdpa attention by default on CPU.

    torchrun --nproc_per_node 1 -m openrlhf_ext.cli.train_sft --data.multiturn ...

Extra flags (removed before upstream parses the rest):
  --logger.metrics_file PATH  append each logged step (loss, lr, ...) as JSON
  --logps.full_vocab          upstream's scoring (full-vocabulary fp32 logits on every position)
                              instead of the output layer on loss positions only (sft_scoring.py)
  --logps.chunk_rows INT      loss positions per output-layer chunk (default 512)
and one widened: ``--ds.param_dtype`` also takes fp32, or auto = bf16 where the hardware computes
it fast, else fp32 (openrlhf_ext/precision.py); resolved here, so upstream sees a concrete value.

Multi-turn chat transcripts (``--data.multiturn --data.apply_chat_template``) put every
assistant turn in the loss and nothing else (tests/openrlhf_ext/test_sft.py checks the mask token
by token against the chat template).
"""

from __future__ import annotations

import runpy
import sys

from openrlhf_ext import sft_scoring
from openrlhf_ext.cpu_runtime import (
    activate_if_no_cuda,
    default_attn_implementation,
    provide_flash_attn_helpers,
)
from openrlhf_ext.launch import die_with_parent
from openrlhf_ext.metrics_log import record_sft_metrics
from openrlhf_ext.precision import allow_fp32_params, param_dtype_choices_widened, resolve_param_dtype
from openrlhf_ext.token_logps import DEFAULT_CHUNK_ROWS


def _pop_value(args: list[str], flag: str) -> str | None:
    """The value of one of our extra flags (``FLAG VALUE`` or ``FLAG=VALUE``; the last one given
    wins, as in argparse), removed from ``args`` before upstream parses."""
    value, kept, rest = None, [], iter(args)
    for arg in rest:
        if arg == flag:
            value = next(rest, None)
            if value is None:
                sys.exit(f"train_sft: {flag} needs a value")
        elif arg.startswith(f"{flag}="):
            value = arg.split("=", 1)[1]
        else:
            kept.append(arg)
    args[:] = kept
    return value


def _pop_switch(args: list[str], flag: str) -> bool:
    if flag not in args:
        return False
    args.remove(flag)
    return True


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    provide_flash_attn_helpers()
    activate_if_no_cuda()
    args = list(sys.argv[1:] if argv is None else argv)
    record_sft_metrics(_pop_value(args, "--logger.metrics_file"))
    chunk_rows = int(_pop_value(args, "--logps.chunk_rows") or DEFAULT_CHUNK_ROWS)
    if not _pop_switch(args, "--logps.full_vocab"):
        sft_scoring.install(chunk_rows)
    if not any(arg.startswith("--ds.attn_implementation") for arg in args):
        args += ["--ds.attn_implementation", default_attn_implementation()]
    args += ["--ds.param_dtype", resolve_param_dtype(_pop_value(args, "--ds.param_dtype") or "bf16")]
    allow_fp32_params()
    sys.argv = ["openrlhf.cli.train_sft", *args]
    with param_dtype_choices_widened():
        runpy.run_module("openrlhf.cli.train_sft", run_name="__main__")


if __name__ == "__main__":
    main()
