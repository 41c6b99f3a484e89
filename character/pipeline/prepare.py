"""The ``prepare`` stage: pin down what the job trains, before any data is generated.

It resolves the model's weights (building the embedded tiny model on first use), checks that the
tokenizer loads and has a chat template, and snapshots the persona's constitution into the run
directory, so every later stage reads one recorded persona and one recorded model path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from character.errors import CharacterError
from character.io import atomic_write_json
from character.models.resolve import resolve_model_path
from character.pipeline.prepare_outputs import MODEL_FILE, PERSONA_FILE, STAGE, PrepareOutputs
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


@register_stage
class PrepareStage(PrepareOutputs, Stage):
    """Its named outputs (``model``, ``persona``) are ``PrepareOutputs``'s, for others to import."""

    name = STAGE
    # What resolve_model_path reads to find the weights, and what model.json records. Not the
    # whole model group: its training and evaluation settings (dtype for training, steering
    # strength, context length) are hashed by the stages that read them, so changing one does not
    # redo this stage and, through its new run id, every stage of the job.
    config_keys = (
        "persona",
        "model.name",
        "model.hub_id",
        "model.path",
        "model.tiny",
        "model.gguf",
        "model.dtype",  # a GGUF file is converted to it
        "model.assistant_name",
    )
    runtime_keys = ("model.allow_download", "cache_dir")  # where the same weights come from

    def is_intact(self, stage_dir: Path, manifest: dict[str, Any]) -> bool:
        return Path(self.model(stage_dir)["path"]).exists()

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoConfig, AutoTokenizer

        cfg = ctx.cfg
        model_path = resolve_model_path(cfg.model, cfg.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not tokenizer.chat_template:
            raise CharacterError(
                f"the tokenizer of model {cfg.model.name!r} at {model_path} has no chat template; "
                "expected an instruct/chat release (the method trains chat assistants)."
            )
        model_config = AutoConfig.from_pretrained(model_path)
        persona = OmegaConf.to_container(cfg.persona, resolve=True)
        atomic_write_json(ctx.stage_dir / PERSONA_FILE, persona)
        atomic_write_json(
            ctx.stage_dir / MODEL_FILE,
            {
                "name": cfg.model.name,
                "path": str(model_path),
                "hub_id": cfg.model.hub_id,
                "assistant_name": cfg.model.assistant_name,
                "architectures": list(getattr(model_config, "architectures", None) or []),
                "vocab_size": len(tokenizer),
            },
        )
        n_questions = sum(len(trait["questions"]) for trait in persona["traits"])
        ctx.log.info(
            "persona %s: %d traits, %d hand-written questions; model %s at %s",
            persona["name"],
            len(persona["traits"]),
            n_questions,
            cfg.model.name,
            model_path,
        )
        return StageResult(
            outputs=[PERSONA_FILE, MODEL_FILE],
            counts={"traits": len(persona["traits"]), "questions": n_questions},
        )
