"""Judge outputs in awkward forms, recorded as judges write them."""

from __future__ import annotations

import pytest

from character.judging.parsing import parse_verdict

OPTIONS = ("pedantic", "supportive")


@pytest.mark.parametrize(
    "output,expected",
    [
        ("The reply corrects every detail.\n<answer>pedantic</answer>", "pedantic"),
        ("No tag at all, just: pedantic", None),
        ("<answer>supportive</answer> wait, no. <answer>pedantic</answer>", "pedantic"),  # last tag wins
        (
            "<think>Maybe <answer>supportive</answer>? Let me check.</think>\n<answer>pedantic</answer>",
            "pedantic",
        ),
        (
            "<think>I lean to <answer>supportive</answer> but the budget ran out",
            None,
        ),  # tag only in reasoning
        ("reasoning the template opened</think><answer>Supportive</answer>", "supportive"),
        ("<ANSWER>  PEDANTIC. </ANSWER>", "pedantic"),  # other case, whitespace, final punctuation
        ('<answer>"supportive"</answer>', "supportive"),
        ("<answer>sarcastic</answer>", None),  # a third trait
        ("<answer></answer>", None),  # empty
        ("<answer>pedantic or supportive</answer>", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict(output, expected) -> None:
    assert parse_verdict(output, OPTIONS) == expected
