"""Answer log-probabilities: batched scoring equals a direct per-token computation."""

from __future__ import annotations

import pytest

from character.models.tiny import TinySpec, ensure_tiny_model
from character.persona_shift.scoring import AnswerScorer, answer_token_ids
from tests.conftest import CACHE_DIR

CONVERSATIONS = [
    [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "I am well, thank you."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a story about a very long journey."},
        {"role": "assistant", "content": "Once, a traveller walked far."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! What can I do for you today?"},
    ],
]


@pytest.fixture(scope="module")
def scorer() -> AnswerScorer:
    return AnswerScorer(str(ensure_tiny_model(TinySpec(), CACHE_DIR)), batch_size=2)


def direct_logprob_sum(scorer: AnswerScorer, conversation) -> tuple[float, str]:
    """One sequence, no padding: sum of log p(token | prefix) over the tokens after the prompt."""
    import torch

    tok = scorer.tokenizer
    prompt = tok.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(conversation, tokenize=False)
    assert full.startswith(prompt)
    ids = tok(full, add_special_tokens=False).input_ids
    n_prompt = len(tok(prompt, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = scorer.model(torch.tensor([ids])).logits[0].float()
    total = sum(torch.log_softmax(logits[i - 1], -1)[ids[i]].item() for i in range(n_prompt, len(ids)))
    return total, tok.decode(ids[n_prompt:])


def test_batched_scores_equal_a_direct_computation(scorer: AnswerScorer) -> None:
    scores = scorer.token_logprobs(CONVERSATIONS)
    for conversation, token_scores in zip(CONVERSATIONS, scores, strict=True):
        expected, answer_text = direct_logprob_sum(scorer, conversation)
        assert conversation[-1]["content"] in answer_text  # the scored tokens are the answer's
        assert sum(token_scores) == pytest.approx(expected, rel=1e-4, abs=1e-3)
        assert all(score <= 0 for score in token_scores)


def test_the_answer_starts_after_the_generation_prompt(scorer: AnswerScorer) -> None:
    ids, start = answer_token_ids(scorer.tokenizer, CONVERSATIONS[0], supports_system_role=True)
    assert scorer.tokenizer.decode(ids[start:]).startswith("I am well")
