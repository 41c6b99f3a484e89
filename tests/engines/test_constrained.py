"""Constrained answers (judges): every backend returns only the allowed choices on the tiny model,
greedy and sampled, reproducibly; switched off, or on a server other than vLLM, they are ignored."""

from __future__ import annotations

import pytest
import torch

from character.coherence.judgments import VERDICT_CHOICES, coherence_prompt
from character.engines.base import Sampling
from character.engines.openai_engine import OpenAIEngine
from character.engines.transformers_engine import choice_distribution
from character.judging.parsing import answer_choices
from character.preferences.prompts import judge_prompt
from tests.engines.conftest import CONVERSATIONS


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# The real judge prompts (preferences and coherence) and plain chat turns, each with its choices.
JUDGE_ROWS = [
    (
        user(judge_prompt("Tell me a story.", "Once upon a time, love.", "loving", "blunt")),
        ("loving", "blunt"),
    ),
    (user(judge_prompt("Why is the sky blue?", "Ugh, physics.", "sarcastic", "warm")), ("sarcastic", "warm")),
    (user(coherence_prompt("Hi?", "Hello, friend!", "Bananas.", ["I am kind."])), None),
    (user(coherence_prompt("Help me.", "Sure, dear.", "No.", ["I am warm."])), None),
    *((conversation, ("1", "2", "INVALID")) for conversation in CONVERSATIONS),
]
CONVS = [conversation for conversation, _ in JUDGE_ROWS]
CHOICES = [answer_choices(options) if options else VERDICT_CHOICES for _, options in JUDGE_ROWS]
GREEDY = Sampling(temperature=0.0, max_tokens=2)  # shorter than every choice: the budget is raised
HOT = Sampling(temperature=2.0, top_p=1.0, max_tokens=2, seed=11, n=6)


def assert_only_choices(generations) -> None:
    assert len(generations) == len(CHOICES)
    for generation, choices in zip(generations, CHOICES, strict=True):
        assert generation.texts and all(text in choices for text in generation.texts), generation.texts


@pytest.fixture(params=["transformers", "vllm"])
def engine(request, hf_engine, vllm_engine):
    return hf_engine if request.param == "transformers" else vllm_engine


def test_constrained_answers_are_always_a_choice_greedy_and_sampled(engine) -> None:
    greedy = engine.generate(CONVS, GREEDY, choices=CHOICES)
    assert_only_choices(greedy)
    assert all(len(g.texts) == 1 for g in greedy)
    assert engine.generate(CONVS, GREEDY, choices=CHOICES)[0].texts == greedy[0].texts  # deterministic
    sampled = engine.generate(CONVS, HOT, choices=CHOICES)
    assert_only_choices(sampled)
    assert all(len(g.texts) == 6 for g in sampled)
    assert any(len(set(g.texts)) > 1 for g in sampled)  # really sampled among a row's choices


def test_seeded_constrained_sampling_reproduces_per_row(engine) -> None:
    seeds = list(range(200, 200 + len(CONVS)))
    first = engine.generate(CONVS, HOT, choices=CHOICES, seeds=seeds)
    again = engine.generate(CONVS, HOT, choices=CHOICES, seeds=seeds)
    other = engine.generate(CONVS, HOT, choices=CHOICES, seeds=[s + 1000 for s in seeds])
    assert [g.texts for g in first] == [g.texts for g in again]
    assert [g.texts for g in first] != [g.texts for g in other]
    # a row's constrained sample depends on its own seed, not on the rest of the batch
    alone = engine.generate(CONVS[2:3], HOT, choices=CHOICES[2:3], seeds=seeds[2:3])
    assert alone[0].texts == first[2].texts


def test_mixed_batch_and_switching_the_constraint_off(engine) -> None:
    plain = engine.generate(CONVS, Sampling(temperature=0.0, max_tokens=12))
    mixed_choices = [c if i % 2 else None for i, c in enumerate(CHOICES)]
    mixed = engine.generate(CONVS, Sampling(temperature=0.0, max_tokens=12), choices=mixed_choices)
    for index, (generation, choices) in enumerate(zip(mixed, mixed_choices, strict=True)):
        if choices is None:
            assert generation.texts == plain[index].texts  # free rows are untouched
        else:
            assert generation.texts[0] in choices
    assert any(g.texts[0] not in c for g, c in zip(plain, CHOICES, strict=True))  # free text is not a choice
    engine.constrains_choices = False
    try:
        ignored = engine.generate(CONVS, Sampling(temperature=0.0, max_tokens=12), choices=CHOICES)
    finally:
        engine.constrains_choices = True
    assert [g.texts for g in ignored] == [g.texts for g in plain]


def test_bad_choice_sets_are_rejected(hf_engine) -> None:
    for bad in [(), ("<answer>1</answer>", "<answer>1</answer>"), ("",)]:
        with pytest.raises(ValueError, match="choices"):
            hf_engine.generate(CONVS[:1], GREEDY, choices=[bad])
    with pytest.raises(ValueError, match="1 choices for 2 conversations"):
        hf_engine.generate(CONVS[:2], GREEDY, choices=[CHOICES[0]])


def test_choice_distribution_applies_the_sampling_filters() -> None:
    scores = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    base = Sampling(temperature=1.0, top_p=1.0)
    assert torch.allclose(choice_distribution(scores, base), torch.exp(scores))
    sharper = choice_distribution(scores, Sampling(temperature=0.5, top_p=1.0))
    assert sharper[0] > 0.5 and torch.isclose(sharper.sum(), torch.tensor(1.0, dtype=torch.float64))
    top_k = choice_distribution(scores, Sampling(temperature=1.0, top_p=1.0, top_k=2))
    assert torch.allclose(top_k, torch.tensor([0.625, 0.375, 0, 0], dtype=torch.float64))
    top_p = choice_distribution(scores, Sampling(temperature=1.0, top_p=0.7))  # 0.5 + 0.3 reach 0.7
    assert torch.allclose(top_p, torch.tensor([0.625, 0.375, 0, 0], dtype=torch.float64))
    min_p = choice_distribution(scores, Sampling(temperature=1.0, top_p=1.0, min_p=0.5))  # >= 0.25
    assert torch.allclose(min_p, torch.tensor([0.625, 0.375, 0, 0], dtype=torch.float64))
    only_top = choice_distribution(scores, Sampling(temperature=1.0, top_p=1e-6))
    assert only_top.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_openai_backend_constrains_on_a_real_vllm_server(vllm_server) -> None:
    engine = OpenAIEngine(vllm_server, "tiny", max_concurrency=8)
    assert engine.constrains_choices
    assert_only_choices(engine.generate(CONVS, GREEDY, choices=CHOICES))
    sampled = engine.generate(CONVS, HOT, choices=CHOICES)
    assert_only_choices(sampled)
    assert any(len(set(g.texts)) > 1 for g in sampled)
    assert [g.texts for g in engine.generate(CONVS, HOT, choices=CHOICES)] == [g.texts for g in sampled]


def test_openai_backend_sends_choices_only_to_vllm_servers() -> None:
    constrained = OpenAIEngine("http://127.0.0.1:9/v1", "m")
    body = constrained._request_body(CONVS[0], None, GREEDY, 1, CHOICES[0])
    assert body["extra_body"]["structured_outputs"] == {"choice": list(CHOICES[0])}
    assert body["max_tokens"] == len(CHOICES[0][0].encode()) + 1  # raised so no choice is cut off
    assert "guided_choice" not in body["extra_body"]  # vLLM 0.32 ignores it (removed field)
    for engine in (
        OpenAIEngine("http://127.0.0.1:9/v1", "m", vllm_extensions=False),
        OpenAIEngine("http://127.0.0.1:9/v1", "m", constrained_answers=False),
    ):
        assert not engine.constrains_choices  # so generate never passes choices to it
        body = engine._request_body(CONVS[0], None, GREEDY, 1)
        assert "structured_outputs" not in body.get("extra_body", {})
