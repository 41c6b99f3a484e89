"""The base model as the steering baseline uses it: the persona's system prompt, the base model on
the transformers backend (hooks need it in-process), and where the steer stage writes the vector
(``SteerOutputs.vector``, which ``SteerStage`` inherits).

Shared by the ``steer`` stage, which fits the vector from the prompted base model, and the
``robustness`` stage, which generates with the vector and prompts the base model the same way,
so that neither stage imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from character.pipeline.engines import trained_model
from character.pipeline.stage import StageContext
from character.prompts.character import character_system_prompt

if TYPE_CHECKING:
    from character.engines.transformers_engine import TransformersEngine

VECTOR_FILE = "vector"  # a folder: directions.safetensors + steering.json


class SteerOutputs:
    @staticmethod
    def vector(steer_dir: Path) -> Path:
        """The persona's steering vector (a folder SteeringVector.load reads)."""
        return steer_dir / VECTOR_FILE


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
