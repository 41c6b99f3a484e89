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

from pathlib import Path

from character.io import staged_folder


def _load_base(base_path: str | Path, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base_path), dtype=getattr(torch, dtype))


def fold_adapter(
    base_path: str | Path, adapter_path: str | Path, out_dir: Path, dtype: str = "float32"
) -> None:
    """Save base + adapter as plain full weights (with the base's tokenizer) in ``out_dir``."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    merged = PeftModel.from_pretrained(_load_base(base_path, dtype), str(adapter_path)).merge_and_unload()
    with staged_folder(out_dir) as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(staging)


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
    # named "default" because PEFT saves any other adapter name into a subfolder of that name
    model.add_weighted_adapter(
        names, [weight for _, weight in adapters], adapter_name="default", combination_type="cat"
    )
    with staged_folder(out_dir) as staging:
        model.save_pretrained(staging, selected_adapters=["default"])
