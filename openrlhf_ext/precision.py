"""Which float type to compute in: bf16 only where the hardware has fast bf16 kernels.

On a CPU without oneDNN's bf16 support (no AVX-512 BW/VL/DQ, e.g. an AVX2-only EPYC), PyTorch
and vLLM's CPU backend fall back to slow bf16 kernels: measured on such a 2-core machine, a
512 x 576 by 576 x 1536 product took 0.71 s in bf16 and 0.020 s in fp32 (35x), and a bf16 DPO
step on SmolLM2-135M ~200 s against ~12 s on CPUs with fast bf16. There, ``auto`` computes in
fp32: the same method, more memory per weight, far less time. Everywhere else (CUDA, CPUs with
AVX-512 or AMX) ``auto`` is bf16, the paper's and OpenRLHF's default.

OpenRLHF 0.11.2 knows only ``bf16`` and ``fp16`` parameters; ``allow_fp32_params`` teaches its
dtype lookup ``fp32`` (DeepSpeed then trains in fp32, as both of its half-precision modes are off),
and ``PARAM_DTYPES`` are the values our CLIs accept. torch is imported only when a function needs
it: the config schema imports this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

PARAM_DTYPES = ("auto", "bf16", "fp16", "fp32")
PARAM_DTYPE_FLAG = "ds.param_dtype"


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has bf16 kernels for this CPU (AVX-512 BW/VL/DQ, AMX, or Arm's)."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def bf16_is_fast() -> bool:
    """Whether bf16 runs at hardware speed where this process computes (CUDA counts as yes)."""
    import torch

    return torch.cuda.is_available() or cpu_has_fast_bf16()


def resolve_param_dtype(requested: str) -> str:
    """``auto`` → ``bf16`` where bf16 is fast, else ``fp32``; an explicit choice is kept."""
    if requested not in PARAM_DTYPES:
        raise ValueError(f"--{PARAM_DTYPE_FLAG}={requested!r}: expected one of {', '.join(PARAM_DTYPES)}")
    if requested != "auto":
        return requested
    return "bf16" if bf16_is_fast() else "fp32"


def engine_dtype(requested: str, on_cpu: bool) -> str:
    """An inference engine's dtype: ``auto`` (the checkpoint's own, bf16 for most chat models)
    becomes ``float32`` on a CPU without fast bf16; any explicit dtype is kept."""
    if requested == "auto" and on_cpu and not cpu_has_fast_bf16():
        return "float32"
    return requested


def allow_fp32_params() -> None:
    """Make OpenRLHF's ``convert_to_torch_dtype`` (which ``Actor`` imports at call time) accept
    ``fp32``. Idempotent."""
    import torch
    from openrlhf.utils import utils

    upstream = utils.convert_to_torch_dtype
    if getattr(upstream, "accepts_fp32", False):
        return

    def convert_to_torch_dtype(param_dtype: str) -> torch.dtype:
        return torch.float32 if param_dtype == "fp32" else upstream(param_dtype)

    convert_to_torch_dtype.accepts_fp32 = True  # type: ignore[attr-defined]
    utils.convert_to_torch_dtype = convert_to_torch_dtype


def widen_param_dtype_choices(parser: argparse.ArgumentParser) -> None:
    """Let an upstream parser's ``--ds.param_dtype`` take every value in ``PARAM_DTYPES``."""
    for action in parser._actions:
        if action.dest == PARAM_DTYPE_FLAG and action.choices is not None:
            action.choices = list(PARAM_DTYPES)


@contextmanager
def param_dtype_choices_widened() -> Iterator[None]:
    """For a parser built out of our reach (an upstream module run as ``__main__``): widen its
    ``--ds.param_dtype`` choices just before it parses."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, *args, **kwargs):
        widen_param_dtype_choices(self)
        return original(self, *args, **kwargs)

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
