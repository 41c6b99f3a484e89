"""A DPO reference model that is the policy with its LoRA adapter switched off.

When only a LoRA adapter is trained, the frozen base weights under it are exactly the reference
model, so OpenRLHF's separate reference copy (a second full model in memory) is unnecessary: the
reference log-probs come from the same module run inside PEFT's ``disable_adapter()`` context.
"""

from __future__ import annotations

from typing import Any


def _peft_module(actor: Any):
    """The PeftModel inside an OpenRLHF Actor (possibly wrapped by a DeepSpeed engine)."""
    module = actor.model
    module = getattr(module, "module", module)  # DeepSpeedEngine -> wrapped module
    if not hasattr(module, "disable_adapter"):
        raise ValueError(
            "--ref.adapter_disabled needs a LoRA-trained policy (--ds.lora.rank > 0); the model "
            f"is a {type(module).__name__} without adapters"
        )
    return module


class AdapterDisabledReference:
    """Callable like an OpenRLHF Actor; runs the policy's base weights (adapter disabled)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        _peft_module(actor)  # fail early if there is no adapter

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _peft_module(self.actor).disable_adapter():
            return self.actor(*args, **kwargs)

    def eval(self) -> AdapterDisabledReference:
        return self

    def train(self, mode: bool = True) -> AdapterDisabledReference:
        return self
