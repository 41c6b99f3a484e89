"""The ``steer`` stage: this persona's activation-steering vector on the base model (App. C).

It is a baseline, not part of training: the robustness and coherence stages compare the trained
model against the base model steered with this vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from character.pipeline.engines import sampling_from, stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.prompts.character import character_system_prompt

if TYPE_CHECKING:
    from character.engines.transformers_engine import TransformersEngine

VECTOR_FILE = "vector"  # a folder: directions.safetensors + steering.json


def persona_system_prompt(ctx: StageContext) -> str:
    """The Appendix A system prompt of this job's persona, under the trained model's name."""
    return character_system_prompt(ctx.cfg.model.assistant_name, [t.trait for t in ctx.cfg.persona.traits])


def base_model_engine(ctx: StageContext) -> TransformersEngine:
    """The base model on the transformers backend (steering hooks need the model in-process)."""
    from character.engines.transformers_engine import TransformersEngine

    params = ctx.cfg.stages.steer
    return TransformersEngine(
        trained_model(ctx)["path"],
        dtype=params.dtype,
        device=params.device,
        batch_size=params.batch_size,
        supports_system_role=ctx.cfg.model.supports_system_role,
    )


@register_stage
class SteerStage(Stage):
    name = "steer"
    inputs = ("prepare",)
    config_keys = ("stages.steer", "persona", "model.assistant_name", "model.supports_system_role", "seed")
    # The vector is unit-norm per layer; only robustness scales it (and hashes the strength).
    config_excludes = ("stages.steer.strength",)

    def run(self, ctx: StageContext) -> StageResult:
        from character.steering.steered_engine import build_steering_vector

        params = ctx.cfg.stages.steer
        seed = stage_seed(ctx.seed, self.name)
        engine = base_model_engine(ctx)
        try:
            vector = build_steering_vector(
                engine,
                persona_system_prompt(ctx),
                samples=int(params.samples),
                sampling=sampling_from(params.sampling, seed),
                seed=seed,
                prompt=params.prompt,
                persona=ctx.cfg.persona.name,
                batch_size=int(params.batch_size),
                method=str(params.method),
            )
        finally:
            engine.close()
        vector.save(ctx.stage_dir / VECTOR_FILE)
        ctx.log.info(
            "steer: %s vector over layers %s from %d samples per side",
            params.method,
            vector.layers,
            params.samples,
        )
        return StageResult(
            outputs=[VECTOR_FILE],
            counts={
                "samples_per_side": int(params.samples),
                "layers": len(vector.layers),
                "method": params.method,
            },
        )
