"""The engine interface every generation backend implements.

Teacher, student, introspection and judges all call ``Engine.generate`` with a batch of chat
conversations; the backend decides how to batch, where to run and how to apply LoRA. Keeping the
interface this small is what lets one stage run unchanged on vLLM (GPU or CPU), plain
transformers, or a remote OpenAI-compatible server.

Judges also pass ``choices``: per conversation, the complete answers allowed (e.g.
``<answer>1</answer>``, ``<answer>2</answer>``). An engine that ``constrains_choices`` returns
exactly one of them for such a row, so even a weak judge never gives an unusable verdict; any
other engine (constraint switched off, or a server that cannot do it) ignores them and generates
freely, and the judge's robust parser reads the free text as before. Choices are a per-row
argument, like prefills and seeds, rather than a ``Sampling`` field, because a row's choices
depend on the row (the revealed-preference judge chooses between that row's two traits) while
one ``Sampling`` serves a whole batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]
Conversation = list[Message]
Choices = tuple[str, ...]


def choice_token_budget(choices: Choices) -> int:
    """Enough new tokens for any of ``choices`` under any tokenization, plus end-of-sequence.

    A constrained decoder may spell a choice with more tokens than the tokenizer would (it allows
    every token sequence that spells it), but never with more tokens than the choice has bytes.
    """
    return max(len(choice.encode()) for choice in choices) + 1


def check_choices(choices: Choices) -> None:
    """Reject a choice set no constrained decoder could honour (empty, blank or repeated answers)."""
    blank = any(not isinstance(choice, str) or not choice for choice in choices)
    if not choices or blank or len(set(choices)) != len(choices):
        raise ValueError(f"choices={choices!r}: expected distinct non-empty strings")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings shared by all backends (vLLM semantics; top_k <= 0 means no top-k)."""

    temperature: float = 0.7
    top_p: float = 0.95
    min_p: float = 0.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    n: int = 1

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoraAdapter:
    """A PEFT LoRA adapter folder, and the name servers know it by."""

    name: str
    path: str


@dataclass
class Generation:
    """The ``n`` sampled continuations of one conversation and their token counts."""

    texts: list[str]
    prompt_tokens: int
    completion_tokens: list[int]


@dataclass
class EngineCounters:
    """What an engine has done since it was created (read by tests and progress reports)."""

    calls: int = 0
    conversations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_in_flight: int = 0  # most requests in flight at once (HTTP backend)

    def record(self, generations: list[Generation]) -> None:
        self.calls += 1
        self.conversations += len(generations)
        self.prompt_tokens += sum(g.prompt_tokens for g in generations)
        self.completion_tokens += sum(sum(g.completion_tokens) for g in generations)


@dataclass
class EngineInfo:
    """Recorded in the manifest of every output an engine produced."""

    backend: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Generate continuations for a batch of conversations.

    ``constrains_choices`` says whether rows with ``choices`` get constrained answers; backends
    that can constrain set it from their ``constrained_answers`` switch (the role's config), and
    it stays false for the rest, which then never receive choices.
    """

    def __init__(self) -> None:
        self.counters = EngineCounters()
        self.constrains_choices = False

    @property
    @abstractmethod
    def info(self) -> EngineInfo:
        """Backend, model and settings, for manifests (never secrets)."""

    @abstractmethod
    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        """Backend-specific generation; ``prefills``, ``seeds`` and ``choices`` have one entry per
        conversation. ``choices`` is passed only to an engine that ``constrains_choices`` and only
        when some row has choices, so a backend that cannot constrain needs no such parameter."""

    def generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None] | None = None,
        lora: LoraAdapter | None = None,
        seeds: list[int | None] | None = None,
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        """Continue each conversation as the assistant.

        With a prefill, the final assistant turn starts with that text and generation continues
        it (the returned text excludes the prefill). ``lora`` selects an adapter on top of the
        engine's base model. ``seeds`` gives each conversation its own seed (default: the
        sampling seed for all); vLLM and HTTP servers honour them per request, so a row's sample
        does not depend on what else is in the batch; transformers seeds the batch with the first.
        ``choices`` gives a row the complete answers allowed: an engine that ``constrains_choices``
        returns one of them as each of the row's texts (sampled with the row's settings and seed);
        any other engine ignores them and continues the conversation freely.
        """
        prefills = [None] * len(conversations) if prefills is None else prefills
        seeds = [sampling.seed] * len(conversations) if seeds is None else seeds
        choices = [None] * len(conversations) if choices is None else choices
        if not len(prefills) == len(seeds) == len(choices) == len(conversations):
            raise ValueError(
                f"{len(prefills)} prefills, {len(seeds)} seeds and {len(choices)} choices for "
                f"{len(conversations)} conversations"
            )
        for row_choices in choices:
            if row_choices is not None:
                check_choices(row_choices)
        if not conversations:
            return []
        if self.constrains_choices and any(c is not None for c in choices):
            generations = self._generate(conversations, sampling, prefills, lora, seeds, choices)
        else:
            generations = self._generate(conversations, sampling, prefills, lora, seeds)
        self.counters.record(generations)
        return generations

    @abstractmethod
    def close(self) -> None:
        """Release the model / connections (engines are also context managers)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
