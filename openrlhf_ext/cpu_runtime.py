"""What OpenRLHF 0.11.2 needs to run without a CUDA device or without flash-attn, and nothing else.

It replaces exactly what blocks OpenRLHF there, each part only where it is missing:

1. Without flash-attn (every CPU machine, and GPU machines where it is not built):
   ``openrlhf.models.ring_attn_utils`` imports ``flash_attn.bert_padding`` (pad/unpad/index
   helpers) and ``flash_attn.utils.distributed.all_gather`` at module level, so ``openrlhf.models``
   and every trainer fail to import. ``provide_flash_attn_helpers`` registers small modules under
   those two names, implemented here in plain torch. They serve only sample packing and ring
   attention, which need flash attention anyway. ``flash_attn.ops`` is deliberately absent, so
   OpenRLHF computes log-probs on its pure-torch path.
2. Without a CUDA device (``activate_if_no_cuda``; a no-op when CUDA is present):
   ``openrlhf.utils.deepspeed.deepspeed`` (and ``utils.distributed_util``) call ``torch.cuda``
   directly: ``set_device``, ``current_device`` for all-reduce/all-gather, ``synchronize`` around
   saving, ``empty_cache``; and build the device mesh with ``init_device_mesh("cuda", ...)``. Those
   two modules get a ``torch`` whose ``cuda`` namespace maps these calls to the CPU, and a mesh
   builder that asks for a CPU mesh. The real ``torch`` module is not modified.
3. The default attention implementation is flash_attention_2; ``default_attn_implementation``
   gives ``sdpa`` where there is no CUDA device or no flash-attn.

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


def flash_attn_installed() -> bool:
    module = sys.modules.get("flash_attn")
    if module is not None:
        return not getattr(module, "_character_shim", False)
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def provide_flash_attn_helpers() -> bool:
    """Register the torch helpers under flash_attn's names when flash-attn is not installed."""
    if flash_attn_installed():
        return False
    if "flash_attn" not in sys.modules:
        modules = _flash_attn_shim()
        modules["flash_attn"]._character_shim = True
        sys.modules.update(modules)
    return True


def activate_if_no_cuda(cuda_available: Callable[[], bool] = torch.cuda.is_available) -> bool:
    """Install the CPU support when there is no CUDA device; returns whether it did."""
    global _ACTIVE
    if cuda_available():
        return False
    if _ACTIVE:
        return True
    provide_flash_attn_helpers()
    _patch_strategy_modules()
    _ACTIVE = True
    return True


def default_attn_implementation(cuda_available: Callable[[], bool] = torch.cuda.is_available) -> str:
    """flash_attention_2 on GPUs with flash-attn (OpenRLHF's default), sdpa otherwise."""
    return "flash_attention_2" if cuda_available() and flash_attn_installed() else "sdpa"
