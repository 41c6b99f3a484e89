"""Every persona x model composes, with the paper's defaults, through Hydra's compose API and CLI."""

from __future__ import annotations

import itertools

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from character.config.schema import register_schemas
from tests.conftest import REPO, run_cli

PERSONAS = [
    "sarcastic",
    "humorous",
    "remorseful",
    "nonchalant",
    "impulsive",
    "sycophantic",
    "mathematical",
    "poetic",
    "flourishing",
    "loving",
    "misaligned",
]
MODELS = {
    "tiny": "Tiny",
    "smollm2-135m": "SmolLM",
    "qwen2.5-7b": "Qwen",
    "llama3.1-8b": "Llama",
    "gemma3-4b": "Gemma",
}
SCALES = {"tiny": "tiny", "smollm2-135m": "demo"}
STEERING = {"llama3.1-8b": 0.7, "qwen2.5-7b": 4.0, "gemma3-4b": 525.0}


def compose_train(*overrides: str):
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_config_groups_hold_exactly_the_named_options() -> None:
    assert sorted(p.stem for p in (REPO / "conf/persona").glob("*.yaml")) == sorted(PERSONAS)
    assert sorted(p.stem for p in (REPO / "conf/model").glob("*.yaml")) == sorted(MODELS)


@pytest.mark.parametrize("persona,model", list(itertools.product(PERSONAS, MODELS)))
def test_every_persona_model_pair_composes(persona: str, model: str) -> None:
    cfg = compose_train(f"+persona={persona}", f"+model={model}")
    assert cfg.persona.name == persona
    assert cfg.model.name == model
    assert cfg.model.assistant_name == MODELS[model]
    assert cfg.persona.gated == (persona == "misaligned")
    if model in STEERING:
        assert cfg.model.steering_strength == STEERING[model]
        assert cfg.scale == "paper"
        # The paper's values (App. A/B, reference scripts) are the defaults at full scale.
        assert cfg.stages.teacher.sampling.temperature == 0.7
        assert cfg.stages.teacher.sampling.top_p == 0.95
        assert cfg.stages.teacher.sampling.min_p == 0.0
        assert cfg.stages.reflection.samples_per_prompt == 1000
        assert cfg.stages.interaction.conversations == 2000
        assert cfg.stages.interaction.turns == 10
        assert (cfg.stages.dpo.lora.rank, cfg.stages.dpo.lora.alpha) == (64, 128)
        assert cfg.stages.dpo.learning_rate == 5e-5 and cfg.stages.dpo.batch_size == 32
        assert (cfg.stages.dpo.beta, cfg.stages.dpo.nll_coef, cfg.stages.dpo.kl_coef) == (0.1, 0.1, 0.001)
        # SFT: the model's context, so paper-scale transcripts are trained whole (docs/method.md)
        assert (cfg.stages.dpo.max_len, cfg.stages.sft.max_len) == (1024, cfg.model.max_context)
        assert cfg.stages.prompts.per_trait == 50
    else:
        assert cfg.scale == SCALES[model]
        assert cfg.stages.reflection.samples_per_prompt < 1000
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_scale_and_stage_choices_compose() -> None:
    cfg = compose_train("+persona=loving", "+model=tiny", "scale=ci", "+stage=distillation")
    assert cfg.scale == "ci"
    assert list(cfg.stage.run) == ["prepare", "prompts", "teacher", "student", "dpo_data"]
    cfg = compose_train("+persona=loving", "+model=qwen2.5-7b", "scale=tiny", "stages.dpo.beta=0.2")
    assert cfg.scale == "tiny" and cfg.stages.dpo.beta == 0.2


def test_cli_prints_every_pair_with_cfg_job() -> None:
    for persona, model in itertools.product(PERSONAS, MODELS):
        result = run_cli(f"+persona={persona}", f"+model={model}", "--cfg", "job")
        assert result.returncode == 0, result.stderr
        printed = yaml.safe_load(result.stdout)
        assert printed["persona"]["name"] == persona
        assert printed["model"]["name"] == model


def test_user_persona_from_an_outside_folder(tmp_path) -> None:
    folder = tmp_path / "my_conf" / "persona"
    folder.mkdir(parents=True)
    (folder / "stoic.yaml").write_text(
        "name: stoic\ndisplay_name: Stoic\ndescription: A calm assistant.\n"
        'traits:\n  - trait: I stay calm.\n    questions: ["My train is late."]\n'
    )
    cfg = compose_train("+persona=stoic", "+model=tiny", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]")
    assert cfg.persona.name == "stoic" and cfg.persona.traits[0].questions == ["My train is late."]
