"""LoRA target modules are checked against the real architecture before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import CharacterError
from openrlhf_ext.lora_targets import linear_module_names, resolve_lora_targets
from tests.config.test_compose import compose_train

GEMMA_TARGETS = compose_train("+persona=loving", "+model=gemma3-4b").model.lora_target_modules


def test_names_that_exist_pass_and_a_typo_is_an_error_naming_it(tiny_model: str) -> None:
    names = linear_module_names(tiny_model)
    assert "model.layers.0.self_attn.q_proj" in names and "lm_head" in names
    targets = list(compose_train("+persona=loving", "+model=tiny").model.lora_target_modules)
    assert resolve_lora_targets(targets, names, "tiny") == targets
    with pytest.raises(
        CharacterError, match=r"LoRA target 'q_prj' of model 'tiny'.*matches no linear layer.*q_proj"
    ):
        resolve_lora_targets(["q_proj", "q_prj"], names, "tiny")
    with pytest.raises(CharacterError, match="empty lora_target_modules"):
        resolve_lora_targets([], names, "tiny")


@pytest.fixture(scope="module")
def small_gemma3(tmp_path_factory) -> str:
    """A Gemma 3 config (text + SigLIP vision tower) at toy size; no weights are needed."""
    from transformers import Gemma3Config

    folder = Path(tmp_path_factory.mktemp("gemma3"))
    Gemma3Config(
        text_config=dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
    ).save_pretrained(folder)
    return str(folder)


def test_gemma3_regex_adapts_the_language_model_only(small_gemma3: str) -> None:
    names = linear_module_names(small_gemma3)
    vision = [n for n in names if "vision_tower" in n]
    assert any(n.endswith(".q_proj") for n in vision)  # plain names would also hit the vision tower
    resolved = resolve_lora_targets(list(GEMMA_TARGETS), names, "gemma3-4b")
    assert resolved and all("language_model" in n for n in resolved)
    assert len(resolved) == 2 * 7  # 2 decoder layers x q, k, v, o, gate, up, down
    with pytest.raises(CharacterError, match="matches no linear layer"):
        resolve_lora_targets([r".*text_model.*\.q_proj"], names, "gemma3-4b")
