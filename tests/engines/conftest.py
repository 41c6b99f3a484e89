"""Real engines on the tiny model, shared by the engine tests (each is expensive to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from character.engines.server import vllm_server as start_vllm_server
from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR, save_random_lora

CONVERSATIONS = [
    [{"role": "user", "content": "Hello there, how are you today?"}],
    [
        {"role": "system", "content": "You are a kind assistant."},
        {"role": "user", "content": "Tell me a story."},
    ],
    [{"role": "user", "content": "What should I cook tonight?"}],
    [{"role": "user", "content": "Why is the sky blue?"}],
]
PREFILLS = [None, None, "<think>I want to ensure", "Well, "]


@pytest.fixture(scope="session")
def tiny_model() -> str:
    return str(ensure_tiny_model(TinySpec(), CACHE_DIR))


@pytest.fixture(scope="session")
def lora_adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter with random (non-zero) weights, saved in PEFT format."""
    return str(save_random_lora(tiny_model, tmp_path_factory.mktemp("lora") / "adapter", rank=8, seed=7))


@pytest.fixture(scope="session")
def hf_engine(tiny_model: str):
    from character.engines.transformers_engine import TransformersEngine

    return TransformersEngine(tiny_model, dtype="float32", batch_size=8)


@pytest.fixture(scope="session")
def vllm_engine(tiny_model: str):
    from character.engines.vllm_engine import VllmEngine

    engine = VllmEngine(tiny_model, dtype="float32", max_lora_rank=8, gpu_memory_utilization=0.3)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vllm_server(
    tiny_model: str, lora_adapter: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server on 127.0.0.1, stopped by its PID at the end."""
    args = [
        "--dtype",
        "float32",
        "--enforce-eager",
        "--gpu-memory-utilization",
        "0.3",
        "--enable-lora",
        "--max-lora-rank",
        "8",
        "--lora-modules",
        f"tiny-lora={lora_adapter}",
    ]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with start_vllm_server(tiny_model, "tiny", args, log_path=log) as url:
        yield url
