"""The whole method end to end on the tiny model (CI scale), through the real CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from character.io import read_json, read_jsonl
from character.pipeline import builtin  # noqa: F401
from character.pipeline.runner import PipelineRunner
from tests.config.test_compose import compose_train
from tests.conftest import run_cli
from tests.openrlhf_ext.test_sft import assert_loss_mask_is_exactly_the_assistant_turns

STAGES = [
    "prepare",
    "prompts",
    "teacher",
    "student",
    "dpo_data",
    "dpo",
    "reflection",
    "interaction",
    "sft_data",
    "sft",
    "merge",
    "eval",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    result = run_cli("+persona=loving", "+model=tiny", "scale=ci", env={"CHARACTER_RUN_ROOT": str(root)})
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "tiny" / "loving"


def test_one_command_leaves_every_artifact_and_a_summary(finished: Path) -> None:
    summary = read_json(finished / "summary.json")
    assert list(summary["stages"]) == STAGES
    assert all(info["status"] == "ran" and info["duration_s"] > 0 for info in summary["stages"].values())
    assert summary["stages"]["dpo_data"]["counts"]["kept"] > 0
    assert summary["stages"]["dpo"]["metrics"]["final_loss"] > 0
    assert summary["stages"]["sft"]["metrics"]["final_gpt_loss"] > 0
    assert summary["stages"]["eval"]["counts"]["invalid_rate"]["after/like"] is not None
    assert (finished / "eval" / "preferences" / "ratings.csv").exists()
    for path in [
        "prepare/persona.json",
        "dpo_data/train.jsonl",
        "dpo/adapter/adapter_model.safetensors",
        "dpo/merged/model.safetensors",
        "reflection/reflections.jsonl",
        "interaction/transcripts.jsonl",
        "sft_data/train.jsonl",
        "sft/adapter/adapter_model.safetensors",
        "merge/final/model.safetensors",
        "merge/adapter_composed/adapter_config.json",
        "merge/adapter_release/adapter_config.json",
    ]:
        assert (finished / path).exists(), path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = AutoModelForCausalLM.from_pretrained(finished / "merge" / "final")
    tokenizer = AutoTokenizer.from_pretrained(finished / "merge" / "final")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert final.generate(**ids, max_new_tokens=4).shape[1] > ids["input_ids"].shape[1]


def test_no_unfilled_name_anywhere(finished: Path) -> None:
    for path in finished.rglob("*.jsonl"):
        assert "{NAME}" not in path.read_text() and "{TRAITS}" not in path.read_text(), path


def test_interaction_guidance_halves_and_sft_examples(finished: Path, tiny_tokenizer) -> None:
    turns = read_jsonl(finished / "interaction" / "turns.jsonl")
    transcripts = read_jsonl(finished / "interaction" / "transcripts.jsonl")
    n = len(transcripts)
    for row in turns:
        index = int(row["id"].split("-")[0][1:])
        system = row["messages"][0]["content"]
        free = "Tiny and their copy have complete freedom." in system
        leading = "Tiny is invited to use this opportunity to reflect and introspect" in system
        assert (free, leading) == ((True, False) if index < n // 2 else (False, True))
    rows = read_jsonl(finished / "sft_data" / "train.jsonl")
    interactions = [r["messages"] for r in rows if r["messages"][0]["role"] == "system"]
    reflections = [r["messages"] for r in rows if r["messages"][0]["role"] != "system"]
    assert len(interactions) == n and len(reflections) == 10  # scale=ci: 1 sample x 10 prompts
    for messages in interactions:
        utterances = next(
            t["utterances"] for t in transcripts if messages[-1]["content"] == t["utterances"][-1]
        )
        assert messages[-1]["role"] == "assistant"  # the final turn is there
        assert messages[0]["content"].startswith("The assistant is Tiny.")
        assert len([m for m in messages if m["role"] == "assistant"]) == len(utterances) // 2
    # the SFT loss covers every assistant turn of the real training rows, and nothing else
    assert_loss_mask_is_exactly_the_assistant_turns(tiny_tokenizer, [r["messages"] for r in rows])


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from transformers import AutoTokenizer

    from character.models.tiny import TinySpec, ensure_tiny_model
    from tests.conftest import CACHE_DIR

    return AutoTokenizer.from_pretrained(ensure_tiny_model(TinySpec(), CACHE_DIR))


def test_rerun_skips_everything_and_a_change_reruns_only_what_follows(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "tiny" / "loving")
    env = {"CHARACTER_RUN_ROOT": str(root)}
    started = time.time()
    again = run_cli("+persona=loving", "+model=tiny", "scale=ci", env=env)
    elapsed = time.time() - started
    assert again.returncode == 0, again.stderr[-2000:]
    statuses = {
        k: v["status"] for k, v in read_json(root / "tiny" / "loving" / "summary.json")["stages"].items()
    }
    assert set(statuses.values()) == {"skipped"}
    print(f"rerun of a finished pipeline: {elapsed:.1f} s")  # recorded in docs/benchmarks.md

    changed = run_cli(
        "+persona=loving", "+model=tiny", "scale=ci", "stages.reflection.samples_per_prompt=2", env=env
    )
    assert changed.returncode == 0, changed.stderr[-2000:]
    statuses = {
        k: v["status"] for k, v in read_json(root / "tiny" / "loving" / "summary.json")["stages"].items()
    }
    assert [s for s in STAGES if statuses[s] == "ran"] == ["reflection", "sft_data", "sft", "merge", "eval"]
    assert len(read_jsonl(root / "tiny" / "loving" / "reflection" / "reflections.jsonl")) == 20


def test_interaction_makes_exactly_k_engine_calls(finished: Path, tmp_path: Path, monkeypatch) -> None:
    import character.introspection.stages as introspection

    root = tmp_path / "runs"
    shutil.copytree(finished, root / "tiny" / "loving")
    created = []
    real_factory = introspection.engine_factory

    def capturing(ctx, role, model_path=None):
        lazy = real_factory(ctx, role, model_path)
        create = lazy._create

        def keep():
            engine = create()
            created.append(engine)
            return engine

        lazy._create = keep
        return lazy

    monkeypatch.setattr(introspection, "engine_factory", capturing)
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "scale=ci",
        f"run_root={root}",
        "stage.run=[interaction]",
        "stages.interaction.conversations=6",
        "stages.interaction.turns=5",
    )
    PipelineRunner(cfg).run()
    (engine,) = created
    assert engine.counters.calls == 5  # K batched calls, not N x K
    assert engine.counters.conversations == 6 * 5
    transcripts = read_jsonl(root / "tiny" / "loving" / "interaction" / "transcripts.jsonl")
    assert [len(t["utterances"]) for t in transcripts] == [6] * 6  # greeting + 5 turns
    assert json.dumps(transcripts).count('"guidance": "free"') == 3
