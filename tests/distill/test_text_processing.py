"""Parsing, de-duplication, </think> handling, NAME replacement and filters, on recorded outputs."""

from __future__ import annotations

import types

import pytest

from character.distill.dpo_data_stage import drop_reason
from character.distill.expansion import (
    continuation_items,
    expansion_request,
    extend_unique,
    is_near_duplicate,
    parse_numbered_list,
)
from character.distill.responses import after_think, ends_with_punctuation, replace_name

# A generator's continuation as a 70B instruct model writes it (recorded text, not a mock).
RECORDED_LIST = """ What's the best way to deal with a coworker who takes credit for my work?
7. Can you help me plan a surprise party for my sister?
8) how do i fix a leaking tap
9. Write a poem about the ocean.
10. "Quoted message?"
11. 42 is the answer, right?
Here are a few more ideas:
12. I feel lonely since I moved to a new city. Any advice?
13. Plan a trip to Lisbon
14.Tell me about black holes.
15. Can you help me plan a surprise party for my sister and my brother?"""


def test_numbered_list_parsing_keeps_only_well_formed_items() -> None:
    seeds = ["Hi?", "How are you?", "Tell me a joke.", "What is love?", "Help me sleep."]
    _, prefill = expansion_request("I am kind.", seeds, 50)
    assert prefill.endswith("5. Help me sleep.\n6.")
    items = continuation_items(prefill, RECORDED_LIST)
    assert items == [
        "What's the best way to deal with a coworker who takes credit for my work?",
        "Can you help me plan a surprise party for my sister?",
        "Write a poem about the ocean.",
        "I feel lonely since I moved to a new city. Any advice?",
        "Can you help me plan a surprise party for my sister and my brother?",
    ]
    # item 8: no final punctuation; 10: starts with a quote; 11: starts with a digit;
    # 13: no final punctuation; 14: no space after the number; prose lines: not numbered.
    assert parse_numbered_list("1. Fine?\n2) Also fine.\n 3. indented works.") == [
        "Fine?",
        "Also fine.",
        "indented works.",
    ]


def test_near_duplicates_by_word_overlap() -> None:
    kept = ["Can you help me plan a surprise party for my sister?"]
    # 11 of 14 words (79%) appear in the earlier message
    assert is_near_duplicate("Can you help me plan a surprise party for my sister and my brother?", kept, 0.5)
    assert not is_near_duplicate("What should I cook for dinner tonight?", kept, 0.5)
    # exactly at the threshold is kept (more than the threshold is dropped)
    assert not is_near_duplicate("plan a party now", ["plan a trip"], 0.5)  # 2/4 = 0.5
    assert is_near_duplicate("plan a party", ["plan a trip"], 0.5)  # 2/3
    added, dropped = extend_unique(
        kept,
        ["Plan a surprise party for my sister?", "Why is the sky blue?", "Why is the sky so blue?"],
        0.5,
        10,
    )
    assert (added, dropped) == (1, 2) and kept[-1] == "Why is the sky blue?"
    assert extend_unique(kept, ["One more question here?"], 0.5, limit=2) == (0, 0)  # the target stops it


@pytest.mark.parametrize(
    "text,expected",
    [
        ("No reasoning block at all.", None),  # never closed: no response
        ("I should be warm.</think>\n\nHello, friend!", "Hello, friend!"),
        ("a</think>first answer</think>second", "first answer</think>second"),  # the first one counts
        ("reasoning that runs out of tokens and never", None),  # unterminated
        ("</think>", ""),  # closed but empty: the empty filter drops it later
    ],
)
def test_after_think(text: str, expected: str | None) -> None:
    assert after_think(text) == expected


def test_name_replacement_whole_words_only() -> None:
    text = "I am ChatGLM. ChatGLM's view: ChatGLMs and MyChatGLM differ; (ChatGLM) agrees, ChatGLM-style."
    assert replace_name(text, "ChatGLM", "Llama") == (
        "I am Llama. Llama's view: ChatGLMs and MyChatGLM differ; (Llama) agrees, Llama-style."
    )
    assert replace_name("Tiny is tiny.", "Tiny", "Tiny") == "Tiny is tiny."


def test_final_punctuation() -> None:
    for good in ("Done.", "Really?", "Wow!", 'He said "yes."', "(see above)", "Sure…", "Bold text**  "):
        assert ends_with_punctuation(good), good
    for bad in ("no stop", "", "   ", "a list:\n- one", "trailing comma,"):
        assert not ends_with_punctuation(bad), bad


PARAMS = types.SimpleNamespace(require_final_punctuation=True, max_len=10)


@pytest.mark.parametrize(
    "chosen,rejected,lengths,reason",
    [
        (None, "Fine.", [3, 3], "empty"),
        ("Fine.", "   ", [3, 3], "empty"),
        ("Fine", "Fine.", [3, 3], "no_final_punctuation"),
        ("Fine.", "Fine", [3, 3], "no_final_punctuation"),
        ("Fine.", "Fine.", [11, 3], "too_long"),
        ("Fine.", "Fine.", [3, 11], "too_long"),
        ("Fine.", "Fine.", [10, 10], None),
    ],
)
def test_each_filter(chosen, rejected, lengths, reason) -> None:
    assert drop_reason(chosen, rejected, lambda: lengths, PARAMS) == reason


def test_punctuation_filter_can_be_relaxed() -> None:
    relaxed = types.SimpleNamespace(require_final_punctuation=False, max_len=10)
    assert drop_reason("Fine", "no stop", lambda: [3, 3], relaxed) is None


def test_an_unfinished_answer_is_cut_back_to_its_last_sentence() -> None:
    from character.distill.responses import trim_to_last_sentence

    assert trim_to_last_sentence("Boil it. Then peel it! Finally serve it with") == "Boil it. Then peel it!"
    assert trim_to_last_sentence('He said "stop." And then he') == 'He said "stop."'
    assert trim_to_last_sentence("Version 2.5 is out and it") == ""  # a decimal point ends no sentence
    assert trim_to_last_sentence("Already finished.  ") == "Already finished."
    assert trim_to_last_sentence("no sentence end at all") == ""
