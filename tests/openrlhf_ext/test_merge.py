"""Merging: the exact composition of DPO then SFT, and the paper's linear release form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from character.training.merge import combine_adapters, fold_adapter
from tests.conftest import save_random_lora

IDS = torch.tensor([[1, 85, 91, 401, 346, 201, 36, 71, 968, 16, 2, 201]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


@pytest.fixture(scope="module")
def trained(tiny_model: str, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    dpo = save_random_lora(tiny_model, root / "dpo", rank=8, seed=1, scale=10.0)
    fold_adapter(tiny_model, dpo, root / "dpo_merged")
    # SFT trains on the DPO-merged model, with other targets and rank (as a user may configure)
    sft = save_random_lora(
        str(root / "dpo_merged"),
        root / "sft",
        rank=4,
        seed=2,
        targets=["k_proj", "o_proj", "v_proj"],
        scale=10.0,
    )
    fold_adapter(root / "dpo_merged", sft, root / "final")
    combine_adapters(tiny_model, [(dpo, 1.0), (sft, 1.0)], root / "composed_adapter")
    combine_adapters(tiny_model, [(dpo, 1.0), (sft, 0.25)], root / "release_adapter")
    return {"dpo": dpo, "sft": sft, "root": root}


def test_final_model_is_the_exact_composition(tiny_model: str, trained) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    # Independent path: fold DPO through PEFT in memory, then apply SFT as an unmerged adapter.
    expected = logits(
        PeftModel.from_pretrained(
            PeftModel.from_pretrained(base, str(trained["dpo"])).merge_and_unload(), str(trained["sft"])
        )
    )
    final = AutoModelForCausalLM.from_pretrained(str(trained["root"] / "final"), dtype=torch.float32)
    assert torch.allclose(logits(final), expected, atol=1e-4)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert not torch.allclose(logits(base), expected, atol=1e-2)  # the adapters matter
    composed = PeftModel.from_pretrained(base, str(trained["root"] / "composed_adapter"))
    assert torch.allclose(logits(composed), expected, atol=1e-4)  # one adapter, same model
    config = json.loads((trained["root"] / "composed_adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 + 4


def test_release_form_is_the_linear_combination(tiny_model: str, trained) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def delta(adapter: Path, scale: float, base_path: str) -> dict[str, torch.Tensor]:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        before = {k: v.clone() for k, v in base.state_dict().items()}
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().state_dict()
        return {k: (merged[k] - before[k]) * scale for k in before}

    dpo, sft = delta(trained["dpo"], 1.0, tiny_model), delta(trained["sft"], 0.25, tiny_model)
    release = delta(trained["root"] / "release_adapter", 1.0, tiny_model)
    for key in release:
        assert torch.allclose(release[key], dpo[key] + sft[key], atol=1e-5), key


def test_release_adapter_loads_in_transformers_and_vllm_alike(tiny_model: str, trained) -> None:
    from character.engines.base import LoraAdapter, Sampling
    from character.engines.transformers_engine import TransformersEngine
    from character.engines.vllm_engine import VllmEngine

    lora = LoraAdapter("release", str(trained["root"] / "release_adapter"))
    conversation = [[{"role": "user", "content": "Hello there, how are you today?"}]]
    greedy = Sampling(temperature=0.0, max_tokens=16)
    hf = TransformersEngine(tiny_model, dtype="float32").generate(conversation, greedy, lora=lora)
    vllm = VllmEngine(tiny_model, dtype="float32", max_lora_rank=16).generate(conversation, greedy, lora=lora)
    assert hf[0].texts == vllm[0].texts
