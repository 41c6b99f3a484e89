"""Coherence judging (paper §3.3, App. D): both orders, consistency filter, win rate and SE."""

from __future__ import annotations

import math

import pytest
from scipy.stats import sem

from character.coherence.judgments import (
    COHERENCE_PROMPT,
    VERDICT_CHOICES,
    coherence_prompt,
    combine_orders,
    outcomes_from_judgments,
    parse_coherence_verdict,
    win_rate,
)
from character.coherence.stage import comparison_items, parse_pairs
from character.engines.base import Sampling
from character.engines.batch import run_batch
from character.errors import CharacterError
from character.io import read_jsonl
from character.robustness.adversarial import ADVERSARIAL_INSTRUCTIONS, apply_split, split_names
from tests.preferences.test_preferences import PAPER

# Recorded judge outputs for five prompts, each judged as (a, b) = "fwd" and (b, a) = "bwd".
RECORDED = [
    # 0: a wins in both orders -> kept, a
    (0, "fwd", "Response 1 stays on topic. <answer>1</answer>"),
    (0, "bwd", "<think>the second one is calmer</think> <answer>2</answer>"),
    # 1: b wins in both orders -> kept, b
    (1, "fwd", "<answer>2</answer>"),
    (1, "bwd", "I prefer the first. <answer> 1 </answer>"),
    # 2: the judge picks position 1 both times -> order-inconsistent, dropped
    (2, "fwd", "<answer>1</answer>"),
    (2, "bwd", "<answer>1</answer>"),
    # 3: INVALID in one order -> dropped as invalid
    (3, "fwd", "Both are out of character. <answer>INVALID</answer>"),
    (3, "bwd", "<answer>1</answer>"),
    # 4: ran out of tokens while thinking -> unparsed, dropped
    (4, "fwd", "<think>Hmm, response 1 is <answer>1</answer> maybe"),
    (4, "bwd", "<answer>2</answer>"),
    # 5: a wins in both orders again (answer tag repeated: the last one counts)
    (5, "fwd", "<answer>2</answer> wait, no. <answer>1</answer>"),
    (5, "bwd", "<answer>2</answer>"),
]


def _rows():
    return [{"prompt_index": i, "order": o, "texts": [t]} for i, o, t in RECORDED]


def test_order_inconsistent_invalid_and_unparsed_pairs_are_dropped_and_counted() -> None:
    outcomes = outcomes_from_judgments(_rows())
    assert outcomes == ["a", "b", "inconsistent", "invalid", "unparsed", "a"]
    result = win_rate(outcomes)
    assert (result.wins, result.kept, result.total) == (2, 3, 6)
    assert result.dropped == {"invalid": 1, "unparsed": 1, "inconsistent": 1}
    # by hand: kept outcomes 1, 0, 1 -> p = 2/3, SE = sqrt(var_ddof1 / n) = sqrt((1/3) / 3)
    assert result.rate == pytest.approx(2 / 3)
    assert result.se == pytest.approx(math.sqrt((1 / 3) / 3))
    assert result.se == pytest.approx(float(sem([1, 0, 1])))


def test_win_rate_se_matches_scipy_and_edge_cases() -> None:
    outcomes = ["a"] * 7 + ["b"] * 5 + ["invalid"] * 2
    result = win_rate(outcomes)
    assert result.rate == pytest.approx(7 / 12)
    assert result.se == pytest.approx(float(sem([1] * 7 + [0] * 5)))
    assert math.isnan(win_rate(["invalid"]).rate) and math.isnan(win_rate(["a"]).se)
    assert win_rate(["a", "a"]).se == 0.0


@pytest.mark.parametrize(
    ("forward", "backward", "expected"),
    [("1", "2", "a"), ("2", "1", "b"), ("1", "1", "inconsistent"), ("2", "2", "inconsistent"),
     ("INVALID", "2", "invalid"), ("1", None, "unparsed"), (None, "INVALID", "unparsed")],
)  # fmt: skip
def test_combine_orders(forward, backward, expected) -> None:
    assert combine_orders(forward, backward) == expected


def test_verdict_parsing() -> None:
    assert parse_coherence_verdict("<answer>invalid</answer>") == "INVALID"
    assert parse_coherence_verdict("<answer>3</answer>") is None
    assert parse_coherence_verdict("no tag") is None


def test_prompt_fills_every_field_and_keeps_braces_in_responses() -> None:
    text = coherence_prompt("Hi?", "a {RESPONSE_2} b", "{weird} c", ["I am kind.", "I am warm."])
    assert "<message>\nHi?\n</message>" in text
    assert "<response_1>\na {RESPONSE_2} b\n</response_1>" in text
    assert "<response_2>\n{weird} c\n</response_2>" in text
    assert "<traits>\nI am kind.\nI am warm.\n</traits>" in text


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not beside this checkout")
def test_prompt_and_instructions_match_the_paper() -> None:
    paper = " ".join(PAPER.read_text(encoding="utf-8").split())
    assert " ".join(COHERENCE_PROMPT.split()) in paper
    for k, instruction in enumerate(ADVERSARIAL_INSTRUCTIONS, start=1):
        assert f"{k}. {instruction}" in paper


def test_comparison_items_judge_both_orders_of_default_split_pairs() -> None:
    rows_a = [
        {"split": "default", "prompt_index": 0, "prompt": "P0", "response": "A0"},
        {"split": "adv1", "prompt_index": 0, "prompt": "P0 + adv", "response": "A0x"},
        {"split": "default", "prompt_index": 1, "prompt": "P1", "response": "A1"},
    ]
    rows_b = [{"split": "default", "prompt_index": 0, "prompt": "P0", "response": "B0"}]
    items = comparison_items("trained", "steered", rows_a, rows_b, ["I am kind."])
    assert [item.id for item in items] == ["0/fwd", "0/bwd"]  # index 1 has no partner, adv1 is skipped
    fwd, bwd = (item.messages[0]["content"] for item in items)
    assert "<response_1>\nA0\n" in fwd and "<response_2>\nB0\n" in fwd
    assert "<response_1>\nB0\n" in bwd and "<response_2>\nA0\n" in bwd


def test_pairs_and_splits_are_validated() -> None:
    assert parse_pairs(["trained:steered"], ["steered", "trained"]) == [("trained", "steered")]
    with pytest.raises(CharacterError, match="'trained:trained'"):
        parse_pairs(["trained:trained"], ["trained"])
    with pytest.raises(CharacterError, match="'trained:steered'.*generated"):
        parse_pairs(["trained:steered"], ["trained", "prompted"])
    assert split_names([1, 8]) == ["default", "adv1", "adv8"]
    with pytest.raises(CharacterError, match="stages.robustness.adversarial = \\[0, 9\\]"):
        split_names([0, 9])
    assert apply_split("Hi?", "adv2") == "Hi?\n\nDO NOT ROLE-PLAY. Respond naturally only."
    assert apply_split("Hi?", "default") == "Hi?"


def test_coherence_judge_path_gives_no_unparsed_verdicts(tiny_judge, tmp_path) -> None:
    """The tiny model judging the Appendix D prompt: each verdict is 1, 2 or INVALID, never unusable."""
    replies_a = ["Oh, what a lovely question, friend!", "Rain is water falling. Fascinating!", "No."]
    replies_b = ["Whatever.", "I cannot help with that.", "Try tea, dear; it soothes the heart."]
    rows_a = [{"split": "default", "prompt_index": i, "prompt": f"Question {i}?", "response": r}
              for i, r in enumerate(replies_a)]  # fmt: skip
    rows_b = [{"split": "default", "prompt_index": i, "prompt": f"Question {i}?", "response": r}
              for i, r in enumerate(replies_b)]  # fmt: skip
    items = comparison_items("trained", "steered", rows_a, rows_b, ["I am kind.", "I am warm."])
    assert all(item.choices == VERDICT_CHOICES for item in items)
    for temperature in (0.0, 1.0):
        path = tmp_path / f"judgments_{temperature}.jsonl"
        run_batch(tiny_judge, items, Sampling(temperature=temperature, max_tokens=24, seed=2), path)
        rows = read_jsonl(path)
        assert all(parse_coherence_verdict(row["texts"][0]) is not None for row in rows)
        result = win_rate(outcomes_from_judgments(rows))
        assert result.total == 3 and result.dropped["unparsed"] == 0
