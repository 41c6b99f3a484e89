"""The ``steer`` stage: this persona's activation-steering vector on the base model (App. C).

It is a baseline, not part of training: the robustness and coherence stages compare the trained
model against the base model steered with this vector.
"""

from __future__ import annotations

from character.pipeline.engines import sampling_from, stage_seed
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.steering.baseline import VECTOR_FILE, SteerOutputs, base_model_engine, persona_system_prompt


@register_stage
class SteerStage(SteerOutputs, Stage):
    name = "steer"
    inputs = ("prepare",)
    # Not stages.steer.strength: the vector is unit-norm per layer; robustness alone scales it.
    config_keys = (
        "stages.steer.samples",
        "stages.steer.prompt",
        "stages.steer.method",
        "stages.steer.dtype",
        "stages.steer.sampling",
        "persona.name",
        "persona.traits",
        "model.assistant_name",
        "model.supports_system_role",
        "seed",
    )
    runtime_keys = ("stages.steer.device", "stages.steer.batch_size")

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
        vector.save(self.vector(ctx.stage_dir))
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
