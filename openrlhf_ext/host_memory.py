"""Give freed host memory back to the operating system during training.

On CPU, torch allocates tensors with glibc's malloc. A DPO step frees hundreds of activation
and logit buffers of varying sizes (every micro-batch has its own sequence lengths); glibc
keeps the freed pages in its arenas, split to fit, so the process's resident memory grows
from step to step although live tensors do not (measured in docs/benchmarks.md). ``malloc_trim(0)``
returns every whole free page of every arena to the kernel; it costs milliseconds and changes no
value, which is cheaper than a fixed mmap threshold (each large allocation then page-faults
afresh: 35 % slower steps, measured). Only glibc has it: elsewhere (musl, macOS) this is a no-op.

The release is not free either: the next allocations fault the returned pages in again, zeroed.
How often to pay that is ``RELEASE_POINTS``. Measured side by side at 512 tokens on SmolLM2
(docs/benchmarks.md): after every backward pass (the default) a DPO step took 25 % longer than
keeping the pages, for 25 % less resident growth; once per optimizer step cost 4 % and saved 7 %,
since the micro-batches of one step still pile their leftovers onto each other. The default is
the one that keeps both of the trainer's targets against upstream (speed and memory) in that run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# When the trainer hands freed pages back: "pass" after every backward pass and every optimizer
# step, "step" once per optimizer step (at the gradient-accumulation boundary), "never" not at all
# (upstream's behaviour: glibc keeps them).
RELEASE_POINTS = ("pass", "step", "never")
DEFAULT_RELEASE_POINT = "pass"


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library lacks it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_host_memory() -> bool:
    """Return free heap pages to the kernel; True when the C library released any."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
