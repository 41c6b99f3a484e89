"""The transformers backend: batched ``generate`` with left padding and PEFT adapters, any device."""

from __future__ import annotations

from typing import Any

from character.engines.base import Conversation, Engine, EngineInfo, Generation, LoraAdapter, Sampling
from character.engines.chat import render_prompt


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
    ) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.model_path = model_path
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model_path, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
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
    ) -> list[Generation]:
        torch = self._torch
        if seeds[0] is not None:
            torch.manual_seed(seeds[0])
        prompts = [
            render_prompt(self.tokenizer, conv, pre, self.supports_system_role)
            for conv, pre in zip(conversations, prefills, strict=True)
        ]
        eos_ids = self._eos_ids()
        results: list[Generation] = []
        with self._activate(lora):
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
