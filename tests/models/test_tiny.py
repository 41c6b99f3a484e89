"""The embedded tiny model: deterministic build, loads with Auto classes, chat template works."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR, REPO

BUILD = "import sys; from pathlib import Path; from character.models.tiny import TinySpec, build_tiny_model; build_tiny_model(TinySpec(seed=int(sys.argv[2])), Path(sys.argv[1]))"


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def build_in_subprocess(out: Path, seed: int = 0) -> None:
    subprocess.run([sys.executable, "-c", BUILD, str(out), str(seed)], cwd=REPO, check=True, timeout=120)


def test_two_builds_are_byte_identical_and_seed_matters(tmp_path: Path) -> None:
    build_in_subprocess(tmp_path / "a")
    build_in_subprocess(tmp_path / "b")
    build_in_subprocess(tmp_path / "c", seed=1)
    first, second, other = (tree_digest(tmp_path / n) for n in "abc")
    assert first == second
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(first)
    assert other["model.safetensors"] != first["model.safetensors"]
    assert other["tokenizer.json"] == first["tokenizer.json"]


@pytest.fixture(scope="module")
def tiny_path() -> Path:
    return ensure_tiny_model(TinySpec(), CACHE_DIR)


def test_loads_with_auto_classes_and_generates(tiny_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    config = model.config
    assert config.model_type == "qwen2"
    assert config.hidden_size // config.num_attention_heads >= 32  # vLLM CPU attention needs it
    assert len(tokenizer) == config.vocab_size
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5 or out[0, -1].item() == tokenizer.eos_token_id


def test_chat_template_roles_and_prefill(tiny_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    messages = [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are kind.<|im_end|>\n<|im_start|>user\nHi.<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    prefill = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "<think>I want"}],
        tokenize=False,
        continue_final_message=True,
    )
    assert prefill.endswith("<|im_start|>assistant\n<think>I want")
    # Special tokens are single tokens, and text round-trips through the byte-level BPE.
    assert len(tokenizer("<|im_start|>", add_special_tokens=False).input_ids) == 1
    sample = "Ünïcode, émojis 🙂 and code: x = [1, 2]."
    assert tokenizer.decode(tokenizer(sample, add_special_tokens=False).input_ids) == sample


def test_cache_reuses_a_finished_build(tmp_path: Path) -> None:
    first = ensure_tiny_model(TinySpec(), tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    (tmp_path / "models" / ".building-leftover").mkdir()  # a crashed build's staging folder
    assert ensure_tiny_model(TinySpec(), tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert ensure_tiny_model(TinySpec(seed=3), tmp_path) != first
