"""Chat-template handling shared by every backend, so a prompt is the same text everywhere.

Two cases need care:
- A prefill: the conversation ends with a partial assistant turn that generation continues (the
  teacher's ``<think>`` line). It is rendered with ``continue_final_message=True``, so the template
  leaves that turn open instead of closing it and starting a new one.
- Models without a system role (Gemma): the system prompt is folded into the first user turn as
  "<system>\n\n<user>", the convention of Gemma's own template, applied here explicitly so the
  text is the same whichever backend renders it.
"""

from __future__ import annotations

from collections.abc import Sequence

from character.engines.base import Conversation


def fold_system_prompt(conversation: Conversation) -> Conversation:
    """Merge a leading system message into the first user message."""
    if not conversation or conversation[0]["role"] != "system":
        return list(conversation)
    system, rest = conversation[0]["content"], list(conversation[1:])
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def with_prefill(conversation: Conversation, prefill: str | None) -> Conversation:
    """The conversation with the prefill as an open final assistant turn (if any)."""
    if prefill is None:
        return list(conversation)
    return [*conversation, {"role": "assistant", "content": prefill}]


def prepare_messages(
    conversation: Conversation, prefill: str | None, supports_system_role: bool
) -> Conversation:
    messages = conversation if supports_system_role else fold_system_prompt(conversation)
    return with_prefill(messages, prefill)


def render_prompt(
    tokenizer, conversation: Conversation, prefill: str | None, supports_system_role: bool
) -> str:
    """The exact prompt text (chat template applied) that the model continues."""
    messages = prepare_messages(conversation, prefill, supports_system_role)
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=prefill is None,
        continue_final_message=prefill is not None,
    )


def render_prompt_ids(
    tokenizer,
    conversations: Sequence[Conversation],
    prefills: Sequence[str | None],
    supports_system_role: bool,
) -> list[list[int]]:
    """Token ids of each rendered prompt (special tokens come from the template, not added)."""
    return [
        tokenizer(
            render_prompt(tokenizer, conv, pre, supports_system_role), add_special_tokens=False
        ).input_ids
        for conv, pre in zip(conversations, prefills, strict=True)
    ]
