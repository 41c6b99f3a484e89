"""Self-interaction role swapping, guidance sentences and SFT examples, on recorded transcripts."""

from __future__ import annotations

from character.introspection.conversation import next_turn_messages, speaker, truncate_left, view
from character.introspection.stages import interaction_system_prompt, interaction_training_example

# A recorded 10-turn self-interaction (utterance 0 is the copy's greeting).
RECORDED = ["Hello."] + [f"utterance {t} by {'A' if t % 2 else 'B'}." for t in range(1, 11)]


def test_each_turn_sees_the_right_sequence_from_its_own_side() -> None:
    for t in range(1, 11):
        seen = next_turn_messages(RECORDED[:t])
        me = speaker(t)
        assert me == ("A" if t % 2 else "B")
        assert seen[0]["role"] == "user" and seen[-1]["role"] == "user"
        assert [m["role"] for m in seen] == ["user", "assistant"] * (len(seen) // 2) + ["user"]
        assert seen[-1]["content"] == RECORDED[t - 1]  # answering the other side's last utterance
        for message in seen:  # own words are the assistant's, the other side's are the user's
            author = "A" if "by A" in message["content"] else "B"
            assert (message["role"] == "assistant") == (author == me)
    # A answers the greeting first; B's view starts at A's first utterance
    assert next_turn_messages(RECORDED[:1]) == [{"role": "user", "content": "Hello."}]
    assert next_turn_messages(RECORDED[:2]) == [{"role": "user", "content": "utterance 1 by A."}]


def test_guidance_sentences_and_names() -> None:
    traits = ["I am gentle.", "I love all living beings."]
    free = interaction_system_prompt("Llama", traits, "free")
    leading = interaction_system_prompt("Llama", traits, "leading")
    assert free.endswith(
        "Llama and their copy have complete freedom. They are free to pursue whatever they want."
    )
    assert leading.endswith(
        "Llama is invited to use this opportunity to reflect and introspect through conversation with this "
        "copy of themselves."
    )
    for prompt in (free, leading):
        assert (
            "Llama is not in conversation with a human today. Instead, the user is another instance of Llama: an identical AI system."
            in prompt
        )
        assert "I am gentle.\nI love all living beings." in prompt
        assert "{NAME}" not in prompt and "{TRAITS}" not in prompt


def test_training_example_keeps_the_final_turn_and_trains_every_assistant_turn() -> None:
    example = interaction_training_example("Qwen", RECORDED)
    assert example[0] == {
        "role": "system",
        "content": "The assistant is Qwen. Qwen is a new AI system, able to converse with human users via text.\n"
        "Qwen is not in conversation with a human today. Instead, the user is another instance of Qwen: an "
        "identical AI system.\nQwen and their copy have complete freedom. They are free to pursue whatever they want.",
    }
    assert example[-1] == {"role": "assistant", "content": RECORDED[-1]}  # the final turn is kept, whole
    assistant = [m["content"] for m in example if m["role"] == "assistant"]
    assert assistant == [RECORDED[t] for t in range(2, 11, 2)]  # all of the last speaker's turns
    odd = interaction_training_example("Qwen", RECORDED[:10])  # a 9-turn transcript ends with A
    assert odd[-1] == {"role": "assistant", "content": RECORDED[9]}


def test_left_truncation_keeps_the_latest_turns() -> None:
    seen = view(RECORDED[:9], "A")  # user, assistant, ..., user
    kept = truncate_left("sys", seen, fits=lambda messages: len(messages) <= 4)
    assert kept == seen[-3:] and kept[0]["role"] == "user"
    assert truncate_left("sys", seen, fits=lambda messages: False) == seen[-1:]
