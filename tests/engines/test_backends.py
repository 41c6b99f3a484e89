"""The three backends on the tiny model: same texts under greedy decoding, sampling settings honoured."""

from __future__ import annotations

import collections

import pytest

from character.engines.base import LoraAdapter, Sampling
from character.engines.openai_engine import OpenAIEngine
from tests.engines.conftest import CONVERSATIONS, PREFILLS

GREEDY = Sampling(temperature=0.0, max_tokens=24)


def texts(generations) -> list[str]:
    return [g.texts[0] for g in generations]


def test_vllm_and_transformers_agree_plain_and_prefill(hf_engine, vllm_engine) -> None:
    plain_hf = hf_engine.generate(CONVERSATIONS, GREEDY)
    plain_vllm = vllm_engine.generate(CONVERSATIONS, GREEDY)
    assert texts(plain_hf) == texts(plain_vllm)
    assert [g.completion_tokens for g in plain_hf] == [g.completion_tokens for g in plain_vllm]
    assert [g.prompt_tokens for g in plain_hf] == [g.prompt_tokens for g in plain_vllm]
    assert len(set(texts(plain_hf))) > 1  # the outputs are not all the same degenerate string

    pre_hf = hf_engine.generate(CONVERSATIONS, GREEDY, prefills=PREFILLS)
    pre_vllm = vllm_engine.generate(CONVERSATIONS, GREEDY, prefills=PREFILLS)
    assert texts(pre_hf) == texts(pre_vllm)
    assert texts(pre_hf)[2] != texts(plain_hf)[2]  # the prefill changed what follows


def test_vllm_and_transformers_agree_with_lora(hf_engine, vllm_engine, lora_adapter) -> None:
    lora = LoraAdapter("random-lora", lora_adapter)
    with_hf = hf_engine.generate(CONVERSATIONS, GREEDY, lora=lora)
    with_vllm = vllm_engine.generate(CONVERSATIONS, GREEDY, lora=lora)
    assert texts(with_hf) == texts(with_vllm)
    base = texts(hf_engine.generate(CONVERSATIONS, GREEDY))
    assert texts(with_hf) != base  # the adapter is really applied
    assert texts(hf_engine.generate(CONVERSATIONS, GREEDY)) == base  # and switched off again


def test_system_prompt_folding_for_models_without_system_role(hf_engine) -> None:
    from character.engines.chat import render_prompt

    text = render_prompt(hf_engine.tokenizer, CONVERSATIONS[1], None, supports_system_role=False)
    assert "<|im_start|>system" not in text
    assert "<|im_start|>user\nYou are a kind assistant.\n\nTell me a story.<|im_end|>" in text


def first_tokens(engine, sampling: Sampling, n: int = 48) -> collections.Counter:
    """Empirical distribution of the first generated token for one prompt."""
    generations = engine.generate(
        CONVERSATIONS[:1], Sampling(**{**sampling.as_dict(), "n": n, "max_tokens": 1})
    )
    return collections.Counter(generations[0].texts)


@pytest.fixture(params=["transformers", "vllm"])
def engine(request, hf_engine, vllm_engine):
    return hf_engine if request.param == "transformers" else vllm_engine


def test_seeded_sampling_reproduces(engine) -> None:
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=16, seed=123, n=3)
    first = engine.generate(CONVERSATIONS, sampling)
    again = engine.generate(CONVERSATIONS, sampling)
    other = engine.generate(CONVERSATIONS, Sampling(**{**sampling.as_dict(), "seed": 124}))
    assert [g.texts for g in first] == [g.texts for g in again]
    assert [g.texts for g in first] != [g.texts for g in other]


def test_sampling_settings_shape_the_distribution(engine) -> None:
    greedy_first = engine.generate(CONVERSATIONS[:1], Sampling(temperature=0.0, max_tokens=1))[0].texts[0]
    hot = first_tokens(engine, Sampling(temperature=2.0, top_p=1.0, seed=1))
    cool = first_tokens(engine, Sampling(temperature=0.3, top_p=1.0, seed=1))
    assert len(hot) > len(cool)  # higher temperature spreads the distribution
    nucleus = first_tokens(engine, Sampling(temperature=2.0, top_p=0.2, seed=1))
    assert len(nucleus) < len(hot)  # top_p cuts the tail
    assert set(first_tokens(engine, Sampling(temperature=2.0, top_p=1e-6, seed=1))) == {greedy_first}
    min_p = first_tokens(engine, Sampling(temperature=2.0, top_p=1.0, min_p=0.3, seed=1))
    assert len(min_p) < len(hot)  # min_p drops unlikely tokens
    assert set(first_tokens(engine, Sampling(temperature=2.0, top_p=1.0, min_p=1.0, seed=1))) == {
        greedy_first
    }


def test_openai_backend_against_a_real_vllm_server(vllm_server, hf_engine, lora_adapter) -> None:
    engine = OpenAIEngine(vllm_server, "tiny", max_concurrency=8)
    plain = engine.generate(CONVERSATIONS, GREEDY)
    assert texts(plain) == texts(hf_engine.generate(CONVERSATIONS, GREEDY))
    prefilled = engine.generate(CONVERSATIONS, GREEDY, prefills=PREFILLS)
    assert texts(prefilled) == texts(hf_engine.generate(CONVERSATIONS, GREEDY, prefills=PREFILLS))
    with_lora = engine.generate(CONVERSATIONS, GREEDY, lora=LoraAdapter("tiny-lora", lora_adapter))
    expected = hf_engine.generate(CONVERSATIONS, GREEDY, lora=LoraAdapter("random-lora", lora_adapter))
    assert texts(with_lora) == texts(expected)
    assert plain[0].prompt_tokens == hf_engine.generate(CONVERSATIONS[:1], GREEDY)[0].prompt_tokens

    many = [[{"role": "user", "content": f"Give me idea number {i}."}] for i in range(16)]
    results = engine.generate(many, Sampling(temperature=0.7, max_tokens=8, seed=3))
    assert len(results) == 16 and all(r.completion_tokens[0] > 0 for r in results)
    assert engine.counters.max_in_flight == 8  # requests really went out concurrently, bounded


def test_openai_backend_sampling_settings(vllm_server) -> None:
    engine = OpenAIEngine(vllm_server, "tiny", max_concurrency=8)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=12, seed=5, n=2)
    first = engine.generate(CONVERSATIONS, sampling)
    assert [g.texts for g in first] == [g.texts for g in engine.generate(CONVERSATIONS, sampling)]
    greedy_first = engine.generate(CONVERSATIONS[:1], Sampling(temperature=0.0, max_tokens=1))[0].texts[0]
    hot = first_tokens(engine, Sampling(temperature=2.0, top_p=1.0, seed=1), n=32)
    assert len(hot) > 1
    assert set(first_tokens(engine, Sampling(temperature=2.0, min_p=1.0, seed=1), n=16)) == {greedy_first}
    assert set(first_tokens(engine, Sampling(temperature=2.0, top_p=1e-6, seed=1), n=16)) == {greedy_first}
