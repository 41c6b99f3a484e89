"""The transformers backend: batched ``generate`` with left padding and PEFT adapters, any device.

Rows with ``choices`` are not decoded at all: each choice is scored as a continuation of the
prompt (the sum of its tokens' log-probabilities, one forward pass per choice) and one is picked
from those scores: the most likely for greedy sampling, otherwise a draw from the softmax of the
scores at the sampling temperature (top_k, top_p and min_p applied to that distribution, as vLLM
applies them to tokens) with the row's own seed. We chose this over a prefix-constrained logits
processor inside ``generate`` because it is exact and short: the answer is a choice by
construction, with no token trie to build per row and no vocabulary scan at every step. It
differs from vLLM's constrained decoding in two documented ways: it scores the tokenizer's own
spelling of each choice (vLLM allows any token sequence that spells one), and greedy picks the
most likely whole answer (vLLM picks the most likely token at each step), so the two backends
agree on clear-cut verdicts but may differ on near-ties. ``repetition_penalty`` does not apply.
"""

from __future__ import annotations

from typing import Any

from character.engines.base import (
    Choices,
    Conversation,
    Engine,
    EngineInfo,
    Generation,
    LoraAdapter,
    Sampling,
)
from character.engines.chat import render_prompt


def choice_distribution(scores: Any, sampling: Sampling) -> Any:
    """Probabilities of the choices from their log-likelihoods, with the sampling filters.

    ``scores`` is a 1-d float tensor; the result sums to one. The most likely choice always
    survives the filters, so the distribution is never empty.
    """
    import torch

    probs = torch.softmax(scores / sampling.temperature, dim=-1)
    order = torch.argsort(probs, descending=True)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if sampling.top_k > 0:
        keep[order[sampling.top_k :]] = False
    if sampling.top_p < 1.0:
        sorted_probs = probs[order]
        mass_before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
        keep[order[mass_before >= sampling.top_p]] = False
    if sampling.min_p > 0:
        keep &= probs >= sampling.min_p * probs.max()
    keep[order[0]] = True
    probs = torch.where(keep, probs, torch.zeros_like(probs))
    return probs / probs.sum()


class TransformersEngine(Engine):
    """Runs a Hugging Face causal LM in this process.

    Conversations are generated in micro-batches of ``batch_size``, left-padded so every prompt
    ends where generation starts. LoRA adapters are loaded with PEFT on first use and switched by
    name; a call without an adapter runs with adapters disabled.
    """

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer_path: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        supports_system_role: bool = True,
        constrained_answers: bool = True,
    ) -> None:
        super().__init__()
        self.constrains_choices = constrained_answers
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from openrlhf_ext.precision import engine_dtype

        self._torch = torch
        self.model_path = model_path
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model_path, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = engine_dtype(dtype, on_cpu=self.device == "cpu")
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device)
        self.model.eval()
        self.batch_size = batch_size
        self.supports_system_role = supports_system_role
        self.dtype = dtype
        self._adapters: dict[str, str] = {}

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            backend="transformers",
            model=self.model_path,
            details={"device": self.device, "dtype": self.dtype, "batch_size": self.batch_size},
        )

    def _activate(self, lora: LoraAdapter | None) -> Any:
        """Select the adapter to use; returns a context manager for the generation call."""
        import contextlib

        from peft import PeftModel

        if lora is None:
            if isinstance(self.model, PeftModel):
                return self.model.disable_adapter()
            return contextlib.nullcontext()
        if lora.name not in self._adapters:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(lora.path, adapter_name=lora.name)
            else:
                self.model = PeftModel.from_pretrained(self.model, lora.path, adapter_name=lora.name)
                self.model.eval()
            self._adapters[lora.name] = lora.path
        elif self._adapters[lora.name] != lora.path:
            raise ValueError(f"adapter name {lora.name!r} is already loaded from {self._adapters[lora.name]}")
        self.model.set_adapter(lora.name)
        return contextlib.nullcontext()

    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        prompts = [
            render_prompt(self.tokenizer, conv, pre, self.supports_system_role)
            for conv, pre in zip(conversations, prefills, strict=True)
        ]
        row_choices = choices if choices is not None else [None] * len(prompts)
        free = [i for i, c in enumerate(row_choices) if c is None]
        constrained = [i for i, c in enumerate(row_choices) if c is not None]
        results: list[Generation | None] = [None] * len(prompts)
        with self._activate(lora):
            if free:
                sampled = self._sample([prompts[i] for i in free], sampling, seeds[free[0]])
                for index, generation in zip(free, sampled, strict=True):
                    results[index] = generation
            if constrained:
                chosen = self._choose(
                    [prompts[i] for i in constrained],
                    [row_choices[i] for i in constrained],
                    [seeds[i] for i in constrained],
                    sampling,
                )
                for index, generation in zip(constrained, chosen, strict=True):
                    results[index] = generation
        return results

    def _sample(self, prompts: list[str], sampling: Sampling, seed: int | None) -> list[Generation]:
        """Free generation in micro-batches, the whole call seeded with ``seed``."""
        torch = self._torch
        if seed is not None:
            torch.manual_seed(seed)
        eos_ids = self._eos_ids()
        results: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {key: value.to(self.device) for key, value in batch.items()}
            kwargs: dict[str, Any] = {
                "max_new_tokens": sampling.max_tokens,
                "repetition_penalty": sampling.repetition_penalty,
                "pad_token_id": self.tokenizer.pad_token_id,
                "eos_token_id": eos_ids,
            }
            if sampling.greedy:
                kwargs.update(do_sample=False, top_k=None, top_p=None, temperature=None)
                repeats = sampling.n
            else:
                kwargs.update(
                    do_sample=True,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=sampling.top_k if sampling.top_k > 0 else 0,
                    min_p=sampling.min_p if sampling.min_p > 0 else None,
                    num_return_sequences=sampling.n,
                )
                repeats = 1
            with torch.no_grad():
                output = self.model.generate(**batch, **kwargs)
            prompt_len = batch["input_ids"].shape[1]
            prompt_counts = batch["attention_mask"].sum(dim=1).tolist()
            new_tokens = output[:, prompt_len:].tolist()
            per_prompt = sampling.n if not sampling.greedy else 1
            for index, prompt_count in enumerate(prompt_counts):
                rows = new_tokens[index * per_prompt : (index + 1) * per_prompt] * repeats
                texts, counts = zip(*(self._decode(row, eos_ids) for row in rows), strict=True)
                results.append(Generation(list(texts), int(prompt_count), list(counts)))
        return results

    def _choose(
        self, prompts: list[str], choices: list[Choices], seeds: list[int | None], sampling: Sampling
    ) -> list[Generation]:
        """One of its choices per prompt (``n`` times), from the choices' log-likelihoods."""
        torch = self._torch
        prompt_ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        choice_ids = [[self.tokenizer(c, add_special_tokens=False).input_ids for c in cs] for cs in choices]
        pairs = [(p, c) for p, cs in zip(prompt_ids, choice_ids, strict=True) for c in cs]
        flat = self._continuation_logprobs(pairs)
        results = []
        offset = 0
        rows = zip(choices, prompt_ids, choice_ids, seeds, strict=True)
        for row_choices, ids, row_choice_ids, seed in rows:
            scores = torch.tensor(flat[offset : offset + len(row_choices)], dtype=torch.float64)
            offset += len(row_choices)
            if sampling.greedy:
                picks = [int(torch.argmax(scores))] * sampling.n
            else:
                generator = None if seed is None else torch.Generator().manual_seed(seed)
                probs = choice_distribution(scores, sampling)
                picks = torch.multinomial(probs, sampling.n, replacement=True, generator=generator).tolist()
            results.append(
                Generation(
                    texts=[row_choices[k] for k in picks],
                    prompt_tokens=len(ids),
                    # the choice's tokens and the end-of-sequence token a decoder would emit
                    completion_tokens=[len(row_choice_ids[k]) + 1 for k in picks],
                )
            )
        return results

    def _continuation_logprobs(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """log P(continuation | prompt) for each (prompt ids, continuation ids) pair.

        Sequences are left-padded so every continuation ends at the last position, and only the
        logits of the last positions are computed (``logits_to_keep``): a full-vocabulary logit
        tensor over long judge prompts would not fit in memory.
        """
        torch = self._torch
        pad = self.tokenizer.pad_token_id
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            keep = max(len(c) for _, c in chunk) + 1
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (prompt, continuation) in enumerate(chunk):
                sequence = prompt + continuation
                input_ids[row, width - len(sequence) :] = torch.tensor(sequence)
                mask[row, width - len(sequence) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    logits_to_keep=keep,
                ).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, (_, continuation) in enumerate(chunk):
                # logits[:, j] predicts the token at position width - keep + j + 1
                first = keep - 1 - len(continuation)
                steps = torch.arange(first, keep - 1)
                scores.append(float(logprobs[row, steps, torch.tensor(continuation)].sum()))
        return scores

    def _eos_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        ids = [i for i in ids if i is not None]
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def _decode(self, tokens: list[int], eos_ids: list[int]) -> tuple[str, int]:
        """Text up to the first end-of-sequence token, and the tokens generated (eos included)."""
        for position, token in enumerate(tokens):
            if token in eos_ids:
                tokens = tokens[: position + 1]
                break
        return self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens)

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
