"""Adapter merging with PEFT: folding an adapter into its base, and combining adapters.

The method trains two LoRA adapters in sequence: DPO on the base model, then SFT on the base with
the DPO adapter folded in. Since a LoRA adapter adds a low-rank delta to each adapted weight,

    W_final = W_base + dW_dpo + dW_sft

exactly, and that composition can be shipped two ways: as full weights (``fold_adapter`` twice),
or as one adapter on the base model that concatenates the two (``combine_adapters`` with weights
1.0 and 1.0, PEFT's "cat" combination, whose rank is the sum of the two). The paper's released
adapters used weights 1.0 and 0.25, which is not the trained model; both forms are written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def _load_base(base_path: str | Path, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base_path), dtype=getattr(torch, dtype))


def _publish(staging: Path, out_dir: Path) -> None:
    """Move a finished folder into place (a crash never leaves a half-written model)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


def fold_adapter(
    base_path: str | Path, adapter_path: str | Path, out_dir: Path, dtype: str = "float32"
) -> None:
    """Save base + adapter as plain full weights (with the base's tokenizer) in ``out_dir``."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    merged = PeftModel.from_pretrained(_load_base(base_path, dtype), str(adapter_path)).merge_and_unload()
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    merged.save_pretrained(staging, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(staging)
    _publish(staging, out_dir)


def combine_adapters(
    base_path: str | Path,
    adapters: list[tuple[str | Path, float]],
    out_dir: Path,
    dtype: str = "float32",
) -> None:
    """One LoRA adapter whose delta is sum_i weight_i * delta_i (PEFT "cat" combination)."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(_load_base(base_path, dtype), str(adapters[0][0]), adapter_name="a0")
    for index, (path, _) in enumerate(adapters[1:], start=1):
        model.load_adapter(str(path), adapter_name=f"a{index}")
    names = [f"a{i}" for i in range(len(adapters))]
    model.add_weighted_adapter(
        names, [weight for _, weight in adapters], adapter_name="combined", combination_type="cat"
    )
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    model.save_pretrained(staging, selected_adapters=["combined"])
    _publish(staging / "combined", out_dir)  # PEFT writes non-default adapters to a subfolder
    shutil.rmtree(staging, ignore_errors=True)
