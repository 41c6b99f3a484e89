"""Appendix B.4's introspection sources: how many examples each kind generates under each ablation
preset, and the SFT set built from another model's run with its name replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import CharacterError
from character.introspection.sources import introspection_plan
from character.introspection.stages import SftDataStage
from character.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from tests.config.test_compose import compose_train
from tests.introspection.test_sft_lengths import REFLECTIONS, TRANSCRIPTS, plant_run, sft_data_context

PAPER_MODELS = ("qwen2.5-7b", "llama3.1-8b", "gemma3-4b")


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_scale_counts_of_each_ablation(model: str) -> None:
    """The method: 1000 x 10 reflections + 2000 conversations; one source alone: 12,000 of it."""
    counts = {}
    for ablation in (None, "reflection_only", "interaction_only", "other_model"):
        extra = [f"+ablation={ablation}"] if ablation else []
        cfg = compose_train("+persona=loving", f"+model={model}", *extra)
        plan = introspection_plan(cfg)
        counts[ablation] = (plan.reflections_per_prompt, plan.conversations)
        assert cfg.variant == ablation
    assert counts == {
        None: ((1000,) * 10, 2000),
        "reflection_only": ((1200,) * 10, 0),
        "interaction_only": ((0,) * 10, 12000),
        "other_model": ((0,) * 10, 0),
    }


def test_small_scales_keep_the_total_and_spread_it_over_the_prompts() -> None:
    cfg = compose_train("+persona=loving", "+model=tiny", "scale=ci", "+ablation=reflection_only")
    plan = introspection_plan(cfg)  # ci: 1 x 10 reflections + 2 conversations = 12 reflections
    assert plan.reflections_per_prompt == (2, 2, 1, 1, 1, 1, 1, 1, 1, 1) and plan.conversations == 0
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "scale=ci",
        "+ablation=reflection_only",
        "stages.sft_data.same_size=false",
    )
    assert introspection_plan(cfg).reflections == 10
    cfg = compose_train("+persona=loving", "+model=tiny", "scale=ci", "+ablation=interaction_only")
    assert introspection_plan(cfg).conversations == 12 and introspection_plan(cfg).reflections == 0


def test_sft_data_from_another_models_run(tmp_path: Path) -> None:
    from character.models.tiny import TinySpec, ensure_tiny_model
    from tests.conftest import CACHE_DIR

    tiny_path = str(ensure_tiny_model(TinySpec(), CACHE_DIR))
    root = tmp_path / "runs"
    source = root / "qwen2.5-7b" / "loving"
    plant_run(source, tiny_path, name="Qwen")
    rows = read_jsonl(source / "reflection" / "reflections.jsonl")
    rows[0]["messages"][1]["content"] = "I am Qwen, and QwenBot is not me."
    atomic_write_jsonl(source / "reflection" / "reflections.jsonl", rows)
    for stage in ("prepare", "reflection", "interaction"):
        atomic_write_json(source / stage / "manifest.json", {"run_id": f"{stage}-1"})

    job = root / "tiny" / "loving" / "variants" / "other_model"
    atomic_write_json(job / "prepare" / "model.json", {"path": tiny_path, "assistant_name": "Tiny"})
    ctx = sft_data_context(job, "+ablation=other_model", "stages.sft_data.max_cut_fraction=1", run_root=root)
    assert ctx.cfg.stages.sft_data.source_run == str(source)
    stage = SftDataStage()
    # the other run's data is an input of the fingerprint, like this run's own stages
    assert stage.hashed_config(ctx.cfg)["source_run_ids"] == {
        "prepare": "prepare-1",
        "reflection": "reflection-1",
        "interaction": "interaction-1",
    }
    result = stage.run(ctx)
    assert (result.counts["reflections"], result.counts["interactions"]) == (
        len(REFLECTIONS),
        len(TRANSCRIPTS),
    )
    texts = [m["content"] for row in read_jsonl(job / "sft_data" / "train.jsonl") for m in row["messages"]]
    assert "I am Tiny, and QwenBot is not me." in texts  # the whole word only
    assert not any("Qwen," in text or text.startswith("Qwen ") for text in texts)

    (source / "interaction" / "manifest.json").unlink()
    with pytest.raises(CharacterError, match=r"source_run=.*its interaction stage has not finished"):
        stage.hashed_config(ctx.cfg)
    reflections = source / "reflection" / "reflections.jsonl"
    size = reflections.stat().st_size + 1  # the file changed since its stage finished
    atomic_write_json(
        source / "reflection" / "manifest.json", {"run_id": "r", "outputs": {reflections.name: size}}
    )
    with pytest.raises(
        CharacterError, match=r"its reflection stage lost outputs \(listed in .*manifest.json\)"
    ):
        stage.hashed_config(ctx.cfg)


def test_only_an_ablation_changes_what_the_generation_stages_hash() -> None:
    """The method's own counts leave the reflection/interaction config views as they were (runs
    made before the ablations keep their fingerprints); an ablation's counts join them."""
    from character.introspection.stages import PLAN_KEY, InteractionStage, ReflectionStage

    plain = compose_train("+persona=loving", "+model=llama3.1-8b")
    for stage in (ReflectionStage(), InteractionStage()):
        assert set(stage.hashed_config(plain)) == set(stage.config_keys)
    only = compose_train("+persona=loving", "+model=llama3.1-8b", "+ablation=reflection_only")
    assert ReflectionStage().hashed_config(only)[PLAN_KEY] == [1200] * 10
    assert InteractionStage().hashed_config(only)[PLAN_KEY] == 0


def test_other_model_on_the_source_model_itself_is_refused() -> None:
    """The preset's default source is qwen2.5-7b's run: on qwen2.5-7b it would be its own data."""
    from character.config.validate import validate_train_config

    cfg = compose_train("+persona=loving", "+model=qwen2.5-7b", "+ablation=other_model")
    with pytest.raises(CharacterError, match=r"stages.sft_data.source_run=.*qwen2.5-7b's own run"):
        validate_train_config(cfg)
    validate_train_config(compose_train("+persona=loving", "+model=llama3.1-8b", "+ablation=other_model"))
