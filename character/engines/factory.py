"""Build the engine a role's config asks for.

Which model and system role a role gets is decided in ``roles``; this module builds what it is
told. Data-parallel replicas import it in their own process (``build_replica``) before their GPUs
are set, so it imports nothing heavy at the top.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from omegaconf import DictConfig, OmegaConf

from character.engines.base import Engine
from character.errors import CharacterError

BACKENDS = ("vllm", "transformers", "openai")


def _constrained(engine_cfg: DictConfig) -> bool:
    """The role's ``constrained_answers`` switch (on when a hand-built config lacks the key)."""
    return bool(engine_cfg.get("constrained_answers", True))


def endpoint_url(engine_cfg: DictConfig) -> str | None:
    """An HTTP engine's URL: ``base_url``, else the value of the variable ``base_url_env`` names."""
    if engine_cfg.get("base_url"):
        return str(engine_cfg.base_url)
    variable = engine_cfg.get("base_url_env")
    if not variable:
        return None
    return os.environ.get(str(variable)) or None


def build_engine(
    engine_cfg: DictConfig, model_path: str, supports_system_role: bool, lora: bool = False
) -> Engine:
    """Create the engine for one role.

    ``model_path`` is the model being trained (used when the role names no model of its own) and
    ``supports_system_role`` that model's template quirk (used unless the role overrides it).
    ``lora``: requests will name LoRA adapters. vLLM then loads its LoRA layers, which cost
    speed even on requests without an adapter (SmolLM2 on a 2-core CPU: 54 instead of 87 tok/s,
    docs/benchmarks.md), so engines that never see an adapter are built without them.
    """
    replicas = int(engine_cfg.get("data_parallel_size", 1) or 1)
    if replicas > 1 and engine_cfg.backend in ("vllm", "transformers"):
        from character.engines.replicated import ReplicatedEngine

        config = OmegaConf.to_container(engine_cfg, resolve=True)
        build = partial(build_replica, lora=lora)
        return ReplicatedEngine(config, model_path, supports_system_role, replicas, build=build)
    model = engine_cfg.model or model_path
    system_role = (
        supports_system_role if engine_cfg.supports_system_role is None else engine_cfg.supports_system_role
    )
    if engine_cfg.backend == "vllm":
        from character.engines.vllm_engine import VllmEngine

        return VllmEngine(
            model,
            tokenizer_path=engine_cfg.tokenizer,
            dtype=engine_cfg.dtype,
            tensor_parallel_size=engine_cfg.tensor_parallel_size,
            gpu_memory_utilization=engine_cfg.gpu_memory_utilization,
            enforce_eager=engine_cfg.enforce_eager,
            max_model_len=engine_cfg.max_model_len,
            enable_lora=lora,
            max_lora_rank=engine_cfg.max_lora_rank,
            seed=engine_cfg.seed,
            supports_system_role=system_role,
            constrained_answers=_constrained(engine_cfg),
        )
    if engine_cfg.backend == "transformers":
        from character.engines.transformers_engine import TransformersEngine

        return TransformersEngine(
            model,
            tokenizer_path=engine_cfg.tokenizer,
            dtype=engine_cfg.dtype,
            device=engine_cfg.device,
            batch_size=engine_cfg.batch_size,
            supports_system_role=system_role,
            constrained_answers=_constrained(engine_cfg),
        )
    if engine_cfg.backend == "openai":
        from character.engines.openai_engine import OpenAIEngine

        base_url = endpoint_url(engine_cfg)
        if not base_url or not engine_cfg.model:
            where = f"${engine_cfg.base_url_env}" if engine_cfg.get("base_url_env") else "base_url"
            raise CharacterError(
                "an engine with backend=openai needs base_url and model (the name the server serves); "
                "the URL may instead come from the environment variable named by base_url_env; got "
                f"{where}={base_url!r}, model={engine_cfg.model!r}."
            )
        return OpenAIEngine(
            base_url,
            engine_cfg.model,
            api_key_env=engine_cfg.api_key_env,
            max_concurrency=engine_cfg.max_concurrency,
            max_retries=engine_cfg.max_retries,
            timeout_s=engine_cfg.timeout_s,
            supports_system_role=system_role,
            vllm_extensions=engine_cfg.vllm_extensions,
            constrained_answers=_constrained(engine_cfg),
            reasoning_effort=engine_cfg.get("reasoning_effort"),
            fixed_sampling=bool(engine_cfg.get("fixed_sampling", False)),
        )
    raise CharacterError(f"engine backend {engine_cfg.backend!r} is unknown; expected one of {BACKENDS}.")


def build_replica(
    engine_cfg: dict[str, Any], model_path: str, supports_system_role: bool, lora: bool = False
) -> Engine:
    """One copy of a data-parallel engine, in its replica's process: the same config, one replica."""
    return build_engine(
        OmegaConf.create({**engine_cfg, "data_parallel_size": 1}), model_path, supports_system_role, lora
    )
