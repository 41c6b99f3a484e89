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
from character.io import atomic_write_json, read_json
from character.models.resolve import resolve_model_path
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


@register_stage
class PrepareStage(Stage):
    name = "prepare"
    config_keys = ("persona", "model")
    # Read only by the robustness evaluation, which hashes it: a new strength reruns that alone.
    config_excludes = ("model.steering_strength",)

    def is_intact(self, stage_dir: Path, manifest: dict[str, Any]) -> bool:
        return Path(read_json(stage_dir / "model.json")["path"]).exists()

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
        atomic_write_json(ctx.stage_dir / "persona.json", persona)
        atomic_write_json(
            ctx.stage_dir / "model.json",
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
            outputs=["persona.json", "model.json"],
            counts={"traits": len(persona["traits"]), "questions": n_questions},
        )
