"""The introspection stages sample the post-distillation model either from the DPO-merged weights
(the default) or from the base model with the DPO adapter in the engine: the same model, so the
same greedy self-reflections, with only the loaded weights and the requests' adapter differing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from character.engines.batch import meta_path
from character.introspection.stages import ReflectionStage
from character.io import atomic_write_json, read_json, read_jsonl
from character.models.tiny import TinySpec, ensure_tiny_model
from character.pipeline.stage import StageContext
from character.training.merge import fold_adapter
from character.training.outputs import DpoOutputs
from tests.config.test_compose import compose_train
from tests.conftest import CACHE_DIR, save_random_lora


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with a prepared tiny model and a DPO stage: a random, non-zero adapter and
    the merged weights the DPO stage writes (fp32, as for a float32 model)."""
    tiny = str(ensure_tiny_model(TinySpec(), CACHE_DIR))
    run_dir = tmp_path_factory.mktemp("runs") / "tiny" / "loving"
    atomic_write_json(run_dir / "prepare" / "model.json", {"path": tiny, "assistant_name": "Tiny"})
    adapter = save_random_lora(tiny, DpoOutputs.adapter(run_dir / "dpo"), rank=4, seed=3)
    fold_adapter(tiny, adapter, DpoOutputs.merged_model(run_dir / "dpo"), "float32")
    return run_dir


def reflect(run_dir: Path, name: str, *overrides: str) -> Path:
    """Run the reflection stage (greedy, transformers engine, 12 tokens) into ``<name>/``."""
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "scale=ci",
        "engine@engines.student=transformers",
        "engines.student.dtype=float32",
        "stages.reflection.sampling.temperature=0",
        "stages.reflection.sampling.max_tokens=12",
        *overrides,
    )
    stage_dir = run_dir / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(
        cfg=cfg,
        run_dir=run_dir,
        stage_dir=stage_dir,
        input_dirs={"prepare": run_dir / "prepare", "dpo": run_dir / "dpo"},
        log=logging.getLogger("test.reflection"),
    )
    ReflectionStage().run(ctx)
    return stage_dir


def written(stage_dir: Path) -> list[list[str]]:
    return [row["texts"] for row in read_jsonl(stage_dir / "generations.jsonl")]


def test_merged_weights_and_the_adapter_write_the_same_reflections(dpo_run: Path) -> None:
    merged = reflect(dpo_run, "merged")  # the default
    adapter = reflect(dpo_run, "adapter", "stages.reflection.dpo_weights=adapter")
    merged_meta = read_json(meta_path(merged / "generations.jsonl"))
    adapter_meta = read_json(meta_path(adapter / "generations.jsonl"))
    assert merged_meta["engine"]["model"] == str(DpoOutputs.merged_model(dpo_run / "dpo"))
    assert merged_meta["lora"] is None
    assert adapter_meta["engine"]["model"] == read_json(dpo_run / "prepare" / "model.json")["path"]
    assert adapter_meta["lora"] == {"name": "dpo", "path": str(DpoOutputs.adapter(dpo_run / "dpo"))}
    assert len(written(merged)) == 10 and written(merged) == written(adapter)
    # and the DPO delta changes what is written: the base model's own reflections differ
    plain_run = dpo_run.parent / "plain"
    tiny = read_json(dpo_run / "prepare" / "model.json")["path"]
    atomic_write_json(plain_run / "prepare" / "model.json", {"path": tiny, "assistant_name": "Tiny"})
    DpoOutputs.merged_model(plain_run / "dpo").parent.mkdir(parents=True)
    DpoOutputs.merged_model(plain_run / "dpo").symlink_to(tiny)
    base = reflect(plain_run, "base")
    assert written(base) != written(merged)


def test_a_served_student_is_refused_only_for_the_stages_that_run() -> None:
    from character.config.validate import value_problems

    served = ("engine@engines.student=openai", "engines.student.model=served")
    both = value_problems(compose_train("+persona=loving", "+model=tiny", *served))
    assert [p.key for p in both if "dpo_weights" in p.key] == [
        "stages.reflection.dpo_weights",
        "stages.interaction.dpo_weights",
    ]
    distillation = value_problems(
        compose_train("+persona=loving", "+model=tiny", "+stage=distillation", *served)
    )
    assert not [p for p in distillation if "dpo_weights" in p.key]
    adapter = [f"stages.{s}.dpo_weights=adapter" for s in ("reflection", "interaction")]
    assert not [
        p
        for p in value_problems(compose_train("+persona=loving", "+model=tiny", *served, *adapter))
        if "dpo_weights" in p.key
    ]
