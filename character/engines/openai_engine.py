"""The OpenAI-compatible HTTP backend (a vLLM server hosting the teacher, or a hosted judge).

Requests go out concurrently (at most ``max_concurrency`` in flight) through the official
``openai`` client, whose retry policy we rely on instead of writing our own: 408/409/429/5xx,
connection errors and timeouts are retried with exponential backoff and jitter (0.5 s doubling to
8 s, honouring Retry-After) up to ``max_retries`` times. When retries are exhausted the whole call
fails with a message naming the endpoint, and no row of it is returned, so the batch runner never
records a partial result as done.

The API key is read from the environment variable named in the config, at the moment the engine
is created; it is never stored in the config, the manifest or any log.

Rows with ``choices`` are constrained only on a vLLM server (``vllm_extensions``): the request
carries ``structured_outputs: {"choice": [...]}``, the field vLLM's OpenAI server reads since the
older ``guided_choice`` was removed (vLLM 0.32 ignores ``guided_choice`` with a warning, so it is
not sent). Other servers have no common way to constrain an answer, so there the choices are
dropped and the judge's parser reads the free answer.

Hosted reasoning models take two more settings: ``reasoning_effort`` is sent when set, and
``fixed_sampling`` (OpenAI's GPT-5 family, which rejects any temperature or top_p but its default
and the ``max_tokens`` field) leaves both sampling values out and sends the token limit as
``max_completion_tokens``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from character.engines.base import (
    Choices,
    Conversation,
    Engine,
    EngineInfo,
    Generation,
    LoraAdapter,
    Sampling,
    choice_token_budget,
)
from character.engines.chat import prepare_messages
from character.errors import CharacterError


class OpenAIEngine(Engine):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 600.0,
        supports_system_role: bool = True,
        vllm_extensions: bool = True,
        constrained_answers: bool = True,
        reasoning_effort: str | None = None,
        fixed_sampling: bool = False,
    ) -> None:
        super().__init__()
        self.reasoning_effort = reasoning_effort
        self.fixed_sampling = fixed_sampling
        self.constrains_choices = constrained_answers and vllm_extensions
        self.base_url = base_url
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.supports_system_role = supports_system_role
        self.vllm_extensions = vllm_extensions
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise CharacterError(
                    f"the engine for {base_url} reads its API key from the environment variable "
                    f"{api_key_env} (api_key_env), which is not set; export it before running."
                )
        else:
            api_key = "EMPTY"  # local servers (vLLM) accept any key
        self._api_key = api_key
        self._in_flight = 0

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            backend="openai",
            model=self.model,
            details={
                "base_url": self.base_url,
                "max_concurrency": self.max_concurrency,
                "max_retries": self.max_retries,
                "timeout_s": self.timeout_s,
                "reasoning_effort": self.reasoning_effort,
                "fixed_sampling": self.fixed_sampling,
            },
        )

    def _request_body(
        self,
        conversation: Conversation,
        prefill: str | None,
        sampling: Sampling,
        seed: int | None,
        choices: Choices | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": prepare_messages(conversation, prefill, self.supports_system_role)
        }
        if self.fixed_sampling:
            limit_key = "max_completion_tokens"
        else:
            limit_key = "max_tokens"
            body.update(temperature=sampling.temperature, top_p=sampling.top_p)
        body[limit_key] = sampling.max_tokens
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        if seed is not None:
            body["seed"] = seed
        extra: dict[str, Any] = {}
        if prefill is not None:
            # vLLM's chat endpoint continues the final assistant message with these two flags.
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if self.vllm_extensions:
            if sampling.min_p > 0:
                extra["min_p"] = sampling.min_p
            if sampling.top_k > 0:
                extra["top_k"] = sampling.top_k
            if sampling.repetition_penalty != 1.0:
                extra["repetition_penalty"] = sampling.repetition_penalty
            if choices is not None:
                extra["structured_outputs"] = {"choice": list(choices)}
                body[limit_key] = max(sampling.max_tokens, choice_token_budget(choices))
        if extra:
            body["extra_body"] = extra
        return body

    async def _one(self, client, semaphore, model: str, body: dict[str, Any]) -> tuple[str, int, int]:
        async with semaphore:
            self._in_flight += 1
            self.counters.max_in_flight = max(self.counters.max_in_flight, self._in_flight)
            try:
                response = await client.chat.completions.create(model=model, **body)
            finally:
                self._in_flight -= 1
        choice = response.choices[0]
        usage = response.usage
        return (
            choice.message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    async def _agenerate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None],
    ) -> list[Generation]:
        import openai

        model = lora.name if lora is not None else self.model
        semaphore = asyncio.Semaphore(self.max_concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        ) as client:
            # n samples are n requests (seed + i): exact token counts, and servers without `n` work.
            tasks = [
                self._one(
                    client,
                    semaphore,
                    model,
                    self._request_body(conv, pre, sampling, None if seed is None else seed + i, row_choices),
                )
                for conv, pre, seed, row_choices in zip(conversations, prefills, seeds, choices, strict=True)
                for i in range(sampling.n)
            ]
            try:
                answers = await asyncio.gather(*tasks)
            except openai.APIError as error:
                status = getattr(error, "status_code", None)
                what = f"HTTP {status}" if status else type(error).__name__
                hint = ""
                if status == 400 and self.vllm_extensions:
                    hint = (
                        " A server that is not vLLM may reject vLLM's extra request fields (min_p, "
                        "top_k, repetition_penalty, prefill flags, structured_outputs): set "
                        "vllm_extensions=false for it."
                    )
                raise CharacterError(
                    f"the OpenAI-compatible endpoint {self.base_url} (model {model}) failed: {what} "
                    f"after up to {self.max_retries} retries with exponential backoff ({error}). "
                    "Check that the server is up and the model name is served; nothing from this "
                    f"batch was recorded.{hint}"
                ) from error
        generations = []
        for index in range(len(conversations)):
            group = answers[index * sampling.n : (index + 1) * sampling.n]
            generations.append(
                Generation(
                    texts=[text for text, _, _ in group],
                    prompt_tokens=group[0][1],
                    completion_tokens=[count for _, _, count in group],
                )
            )
        return generations

    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        row_choices = choices if choices is not None else [None] * len(conversations)
        return asyncio.run(self._agenerate(conversations, sampling, prefills, lora, seeds, row_choices))

    def close(self) -> None:
        """Nothing to release: each ``generate`` call opens and closes its own HTTP client."""
