"""What OpenRLHF 0.11.2 needs to run without a CUDA device, and nothing else.

Active only when no CUDA device is present (``activate_if_no_cuda``); on a GPU machine it does
nothing and OpenRLHF runs untouched. It replaces exactly what blocks OpenRLHF on a CPU:

1. ``openrlhf.models.ring_attn_utils`` imports ``flash_attn.bert_padding`` (pad/unpad/index helpers)
   and ``flash_attn.utils.distributed.all_gather`` at module level, so ``openrlhf.models`` and every
   trainer fail to import without flash-attn, which cannot be built without CUDA. We register
   small modules under those two names, implemented here in plain torch. They are used only for
   sample packing / ring attention, which need flash attention anyway. We deliberately do not
   provide ``flash_attn.ops``: OpenRLHF then computes log-probs on its pure-torch path.
2. ``openrlhf.utils.deepspeed.deepspeed`` (and ``utils.distributed_util``) call ``torch.cuda``
   directly: ``set_device``, ``current_device`` for all-reduce/all-gather, ``synchronize`` around
   saving, ``empty_cache``; and build the device mesh with ``init_device_mesh("cuda", ...)``. Those
   two modules get a ``torch`` whose ``cuda`` namespace maps these calls to the CPU, and a mesh
   builder that asks for a CPU mesh. The real ``torch`` module is not modified.
3. The default attention implementation is flash_attention_2; ``default_attn_implementation``
   gives ``sdpa`` on CPU, which the CLI uses unless the user chose one.

DeepSpeed itself picks its CPU accelerator and the gloo backend without help.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Callable

import torch

_ACTIVE = False


def _flash_attn_shim() -> dict[str, types.ModuleType]:
    """Torch implementations of the flash_attn helpers OpenRLHF imports at module level."""
    from einops import rearrange

    def index_first_axis(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return tensor[indices]

    def unpad_input(hidden: torch.Tensor, attention_mask: torch.Tensor, unused_mask=None):
        seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
        indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
        cu_seqlens = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
        flat = rearrange(hidden, "b s ... -> (b s) ...")
        return flat[indices], indices, cu_seqlens, int(seqlens.max().item()), seqlens

    def pad_input(hidden: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
        output = torch.zeros((batch * seqlen, *hidden.shape[1:]), dtype=hidden.dtype, device=hidden.device)
        output[indices] = hidden
        return rearrange(output, "(b s) ... -> b s ...", b=batch)

    def all_gather(tensor: torch.Tensor, group=None) -> torch.Tensor:
        world = torch.distributed.get_world_size(group)
        parts = [torch.empty_like(tensor) for _ in range(world)]
        torch.distributed.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts, dim=0)

    root = types.ModuleType("flash_attn")
    root.__path__ = []  # a package, so submodule imports resolve to the modules below
    bert_padding = types.ModuleType("flash_attn.bert_padding")
    bert_padding.index_first_axis = index_first_axis
    bert_padding.unpad_input = unpad_input
    bert_padding.pad_input = pad_input
    bert_padding.rearrange = rearrange
    utils = types.ModuleType("flash_attn.utils")
    utils.__path__ = []
    distributed = types.ModuleType("flash_attn.utils.distributed")
    distributed.all_gather = all_gather
    modules = {
        "flash_attn": root,
        "flash_attn.bert_padding": bert_padding,
        "flash_attn.utils": utils,
        "flash_attn.utils.distributed": distributed,
    }
    # A spec without a loader: importlib.util.find_spec (which transformers calls) then works, and
    # transformers still reports flash-attn as unavailable (it has no installed distribution).
    for name, module in modules.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=hasattr(module, "__path__"))
    return modules


class _CpuCuda(types.SimpleNamespace):
    """The ``torch.cuda`` calls OpenRLHF's DeepSpeed strategy makes, answered for a CPU."""

    def __getattr__(self, name: str):
        return getattr(torch.cuda, name)

    @staticmethod
    def set_device(device) -> None:
        return None

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def synchronize(device=None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None


def _torch_with_cpu_cuda() -> types.ModuleType:
    proxy = types.ModuleType("torch")
    proxy.__dict__.update(torch.__dict__)
    proxy.cuda = _CpuCuda()
    return proxy


def _patch_strategy_modules() -> None:
    import openrlhf.utils.deepspeed.deepspeed as strategy_module
    import openrlhf.utils.distributed_util as distributed_util
    from torch.distributed.device_mesh import init_device_mesh

    def cpu_device_mesh(device_type: str, *args, **kwargs):
        return init_device_mesh("cpu", *args, **kwargs)

    proxy = _torch_with_cpu_cuda()
    strategy_module.torch = proxy
    strategy_module.init_device_mesh = cpu_device_mesh
    distributed_util.torch = proxy
    # distributed_util imports torch inside the function; rebind that name too.
    original = distributed_util.torch_dist_barrier_and_cuda_sync

    def barrier_only() -> None:
        torch.distributed.barrier()

    barrier_only.__doc__ = original.__doc__
    distributed_util.torch_dist_barrier_and_cuda_sync = barrier_only
    strategy_module.torch_dist_barrier_and_cuda_sync = barrier_only


def activate_if_no_cuda(cuda_available: Callable[[], bool] = torch.cuda.is_available) -> bool:
    """Install the CPU support when there is no CUDA device; returns whether it did."""
    global _ACTIVE
    if cuda_available():
        return False
    if _ACTIVE:
        return True
    try:
        import flash_attn  # noqa: F401  (a real install needs no shim)
    except ImportError:
        sys.modules.update(_flash_attn_shim())
    _patch_strategy_modules()
    _ACTIVE = True
    return True


def default_attn_implementation(cuda_available: Callable[[], bool] = torch.cuda.is_available) -> str:
    """flash_attention_2 on GPUs (OpenRLHF's default), sdpa on CPUs."""
    return "flash_attention_2" if cuda_available() else "sdpa"
