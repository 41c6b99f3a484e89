"""How stages get their engines, sampling settings and the model they train."""

from __future__ import annotations

import hashlib
from typing import Any

from omegaconf import DictConfig

from character.engines.base import Engine, Sampling
from character.engines.roles import resolve_role
from character.pipeline.prepare_outputs import PrepareOutputs
from character.pipeline.stage import StageContext


def trained_model(ctx: StageContext) -> dict[str, Any]:
    """The model this job trains, as the prepare stage recorded it (path, name, ...); the stage
    must name ``prepare`` among its inputs."""
    return PrepareOutputs.model(ctx.input_dirs["prepare"])


class LazyEngine:
    """Creates the engine on first call and reuses it; ``close`` releases it if it was created.

    Stages hand this to ``run_batch`` so that a resumed stage with nothing left to generate never
    loads a model, and several batches of one stage share one engine.
    """

    def __init__(self, create) -> None:
        self._create = create
        self._engine: Engine | None = None

    def __call__(self) -> Engine:
        if self._engine is None:
            self._engine = self._create()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> LazyEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def engine_factory(
    ctx: StageContext,
    role: str,
    model_path: str | None = None,
    engine_cfg: DictConfig | None = None,
    lora: bool = False,
) -> LazyEngine:
    """The engine of ``role`` (``engines.<role>``, or ``engine_cfg`` when given), created only when
    first needed; which model it loads and its system role are decided by
    ``character.engines.roles``.

    ``model_path`` overrides the model to load (e.g. the DPO-merged model for introspection);
    otherwise the role's own ``model``, or the trained model. ``lora``: the stage's requests name
    LoRA adapters (without it a vLLM engine is built without LoRA layers, which are slow).
    """
    spec = resolve_role(
        role,
        ctx.cfg.engines[role] if engine_cfg is None else engine_cfg,
        default_model=model_path or trained_model(ctx)["path"],
        default_system_role=ctx.cfg.model.supports_system_role,
        model_path=model_path,
        lora=lora,
    )

    def create() -> Engine:
        ctx.log.info("starting the %s engine (%s)", role, spec.config.backend)
        return spec.build()

    return LazyEngine(create)


def stage_seed(base_seed: int, stage: str) -> int:
    """A seed per (job seed, stage), so stages do not draw the same random numbers."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{stage}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def sampling_from(sampling_cfg: DictConfig, seed: int, n: int = 1) -> Sampling:
    return Sampling(
        temperature=float(sampling_cfg.temperature),
        top_p=float(sampling_cfg.top_p),
        min_p=float(sampling_cfg.min_p),
        top_k=int(sampling_cfg.top_k),
        repetition_penalty=float(sampling_cfg.repetition_penalty),
        max_tokens=int(sampling_cfg.max_tokens),
        seed=seed,
        n=n,
    )
