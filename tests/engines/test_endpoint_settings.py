"""The HTTP engine's endpoint settings for hosted models: a URL from a named environment variable,
``reasoning_effort``, and the GPT-5 family's fixed sampling (no temperature/top_p,
``max_completion_tokens``). The requests' bodies are checked as they would be sent."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from character.config.schema import EngineConfig
from character.engines.base import Sampling
from character.engines.factory import build_engine
from character.engines.openai_engine import OpenAIEngine
from character.errors import CharacterError

CONVERSATION = [{"role": "user", "content": "Which answer is more coherent?"}]
SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=64)


def test_default_requests_carry_the_sampling_values() -> None:
    body = OpenAIEngine("http://127.0.0.1:1/v1", "m")._request_body(CONVERSATION, None, SAMPLING, 3)
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.0, 1.0, 64, 3)
    assert "reasoning_effort" not in body and "max_completion_tokens" not in body


def test_a_reasoning_model_gets_its_effort_and_no_sampling_values() -> None:
    engine = OpenAIEngine(
        "http://127.0.0.1:1/v1",
        "gpt-5-mini",
        reasoning_effort="medium",
        fixed_sampling=True,
        vllm_extensions=False,
    )
    body = engine._request_body(CONVERSATION, None, SAMPLING, None)
    assert body == {"messages": CONVERSATION, "max_completion_tokens": 64, "reasoning_effort": "medium"}
    # a constrained answer's budget goes under the same name (on a vLLM server)
    constrained = OpenAIEngine("http://127.0.0.1:1/v1", "m", fixed_sampling=True)
    body = constrained._request_body(CONVERSATION, None, Sampling(max_tokens=1), None, ("A", "B"))
    assert "max_tokens" not in body and body["max_completion_tokens"] >= 1
    assert body["extra_body"]["structured_outputs"] == {"choice": ["A", "B"]}


def test_the_url_comes_from_the_variable_base_url_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = OmegaConf.merge(
        OmegaConf.structured(EngineConfig),
        {"backend": "openai", "model": "claude-haiku-4-5", "base_url_env": "JUDGE_URL_FOR_TEST"},
    )
    with pytest.raises(CharacterError, match=r"\$JUDGE_URL_FOR_TEST=None"):
        build_engine(cfg, "/unused", True)
    monkeypatch.setenv("JUDGE_URL_FOR_TEST", "http://127.0.0.1:8123/v1")
    assert build_engine(cfg, "/unused", True).base_url == "http://127.0.0.1:8123/v1"
