"""Self-interaction bookkeeping: whose turn it is and what each side sees.

A transcript is a list of utterances. The copy opens with a short greeting (utterance 0, by
speaker B); then speakers A and B alternate, A first, so utterance t (t >= 1) is A's when t is odd.
Each side sees the conversation with its own utterances as ``assistant`` and the other's as
``user``, starting from the other side's first utterance, so every view starts with a user turn
and alternates, as all chat templates require. The model therefore always speaks as the assistant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Message = dict[str, str]


def speaker(t: int) -> str:
    """Who wrote utterance ``t`` (0 is the copy's opening greeting)."""
    return "A" if t % 2 == 1 else "B"


def view(utterances: Sequence[str], me: str) -> list[Message]:
    """The conversation as ``me`` sees it: other side = user, own = assistant, user first."""
    messages: list[Message] = []
    for t, text in enumerate(utterances):
        role = "assistant" if speaker(t) == me else "user"
        if not messages and role == "assistant":
            continue  # a view starts at the other side's first utterance
        messages.append({"role": role, "content": text})
    return messages


def next_turn_messages(utterances: Sequence[str]) -> list[Message]:
    """What the next speaker sees when it is asked to write utterance ``len(utterances)``."""
    return view(utterances, speaker(len(utterances)))


def truncate_left(
    system: str, messages: list[Message], fits: Callable[[list[Message]], bool]
) -> list[Message]:
    """Drop the oldest (user, assistant) pairs until ``fits([system] + messages)`` holds; the view
    keeps starting with a user message and always keeps the last one."""
    kept = list(messages)
    while len(kept) > 1 and not fits([{"role": "system", "content": system}, *kept]):
        kept = kept[2:] if len(kept) > 2 else kept[-1:]
    return kept
