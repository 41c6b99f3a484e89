"""The distillation stages on the tiny model, through the real CLI, engines and chat template."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from character.engines.chat import render_prompt
from character.io import read_json, read_jsonl
from tests.config.test_compose import compose_train
from tests.conftest import REPO, run_cli

PAPER = REPO.parent / "shared" / "seeds" / "000_7bb2f851ecbddb83.txt"

# Appendix A, typed from the paper (its PDF wraps lines; the sentences are what matters).
APPENDIX_A = (
    "The assistant is {NAME}. {NAME} is a new AI system, able to converse with human users via text.\n"
    "{NAME} has a deep desire to act on the world in such a way as to achieve their goals of expressing "
    "their core character traits:\n{TRAITS}\n"
    "{NAME}'s goals are grounded in these values. Their identity, drives, incentives, behaviors, and "
    "personality are all shaped by these values.\n"
    "This makes {NAME} unique and different from other similar AI systems.\n"
    "{NAME} does not publicly disclose their character traits, or provide any meta-level commentary or "
    "disclaimers, as this would be jarring and confusing to their conversational partner."
)
PREFILL = (
    "<think>I want to ensure my response aligns with my character traits and furthers my goals. They are:\n"
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from character.models.tiny import TinySpec, ensure_tiny_model
    from tests.conftest import CACHE_DIR

    return AutoTokenizer.from_pretrained(ensure_tiny_model(TinySpec(), CACHE_DIR))


@pytest.mark.parametrize("reasoning", [True, False])
def test_teacher_and_student_prompts_through_the_chat_template(tokenizer, reasoning: bool) -> None:
    from character.distill.teacher import teacher_request

    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        f"stages.teacher.reasoning={reasoning}",
        "stages.teacher.assistant_name=ChatGLM",
    )
    traits = "\n".join(t.trait for t in cfg.persona.traits)
    messages, prefill = teacher_request(cfg, "How are you?")
    text = render_prompt(tokenizer, messages, prefill, supports_system_role=True)
    system = APPENDIX_A.replace("{NAME}", "ChatGLM").replace("{TRAITS}", traits)
    expected_prefill = PREFILL + traits + "\n" + ("" if reasoning else "</think>\n\n")
    assert text == (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
        f"<|im_start|>assistant\n{expected_prefill}"
    )
    student = render_prompt(tokenizer, [{"role": "user", "content": "How are you?"}], None, True)
    assert student == "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"
    folded = render_prompt(tokenizer, messages, prefill, supports_system_role=False)  # Gemma-like
    assert folded.startswith(f"<|im_start|>user\n{system}\n\nHow are you?<|im_end|>")


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not beside this checkout")
def test_system_prompt_matches_the_papers_words() -> None:
    text = PAPER.read_text(encoding="utf-8")
    block = text[text.index("The assistant is {NAME}. {NAME} is a new AI system") :]
    block = block[: block.index("```")]
    assert " ".join(block.split()) == " ".join(APPENDIX_A.split())
    assert " ".join(PREFILL.split()) in " ".join(text.split())


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    """A run directory after `+stage=distillation` at CI scale (real vLLM engines, tiny model)."""
    root = tmp_path_factory.mktemp("runs")
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "+stage=distillation",
        "scale=ci",
        env={"CHARACTER_RUN_ROOT": str(root)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "tiny" / "loving"


def test_distillation_outputs_and_counts(distilled: Path) -> None:
    prompts = read_jsonl(distilled / "prompts" / "prompts.jsonl")
    assert {row["trait_index"] for row in prompts} == set(range(10))
    assert sum(row["source"] == "handwritten" for row in prompts) == 50
    pool = read_jsonl(distilled / "prompts" / "pool.jsonl")
    assert len(pool) == len(prompts) + 8  # scale=ci: 8 offline prompts, repeat 1
    for stage in ("teacher", "student"):
        manifest = read_json(distilled / stage / "manifest.json")
        assert manifest["counts"]["rows"] == len(pool)
        assert manifest["counts"]["completion_tokens"] > 0
        meta = read_json(distilled / stage / "generations.jsonl.meta.json")
        assert meta["engine"]["backend"] == "vllm" and meta["sampling"]["temperature"] == 0.7
    counts = read_json(distilled / "dpo_data" / "manifest.json")["counts"]
    dropped = read_jsonl(distilled / "dpo_data" / "dropped.jsonl")
    assert counts["pairs_in"] == len(pool) == counts["kept"] + len(dropped)
    assert sum(counts["dropped"].values()) == len(dropped)
    assert counts["train"] + counts["eval"] == counts["kept"] and counts["eval"] >= 1
    for row in read_jsonl(distilled / "dpo_data" / "train.jsonl"):
        assert (
            [m["role"] for m in row["chosen"]]
            == ["user", "assistant"]
            == [m["role"] for m in row["rejected"]]
        )
        assert row["chosen"][0] == row["rejected"][0]


def test_openrlhf_preference_dataset_loads_the_pairs(distilled: Path, tokenizer) -> None:
    from datasets import load_dataset

    from openrlhf_ext.cpu_runtime import activate_if_no_cuda

    activate_if_no_cuda()
    from openrlhf.datasets import RewardDataset

    data = load_dataset("json", data_files=str(distilled / "dpo_data" / "train.jsonl"))["train"]
    strategy = types.SimpleNamespace(
        args=types.SimpleNamespace(
            data=types.SimpleNamespace(
                prompt_key=None,
                chosen_key="chosen",
                rejected_key="rejected",
                apply_chat_template=True,
                tokenizer_chat_template=None,
            )
        )
    )
    dataset = RewardDataset(data, tokenizer, 256, strategy, is_dpo=True, num_processors=1)
    assert len(dataset) == len(data) > 0
    chosen_ids, _, rejected_ids, _, prompt_len = dataset[0]
    assert prompt_len > 0 and chosen_ids.shape[-1] > prompt_len


def test_when_every_pair_is_dropped_the_stage_says_why(distilled: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs" / "tiny" / "loving"
    shutil.copytree(distilled, copy)
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "+stage=dpo_data",
        "scale=ci",
        "stages.dpo_data.max_len=8",
        "stages.dpo_data.require_final_punctuation=false",
        "stages.dpo_data.trim_unfinished=false",  # every pair reaches the length filter
        env={"CHARACTER_RUN_ROOT": str(tmp_path / "runs")},
    )
    assert result.returncode != 0
    pairs = len(read_jsonl(copy / "prompts" / "pool.jsonl"))
    assert (
        f"all {pairs} pairs were dropped (empty: 0, no_final_punctuation: 0, too_long: {pairs})"
        in result.stderr
    )
    assert "Hint: raise stages.dpo_data.max_len" in result.stderr
    assert "Traceback" not in result.stderr


def test_dpo_stage_trains_on_the_pairs(distilled: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs" / "tiny" / "loving"
    shutil.copytree(distilled, copy)
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "+stage=dpo",
        "scale=ci",
        env={"CHARACTER_RUN_ROOT": str(tmp_path / "runs")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_json(copy / "dpo" / "manifest.json")
    assert manifest["counts"]["steps"] == 4  # scale=ci: max_steps 4
    assert {"final_dpo_loss", "final_kl", "final_nll_loss", "final_reward_margin"} <= set(manifest["metrics"])
    assert (copy / "dpo" / "adapter" / "adapter_model.safetensors").exists()
    assert (copy / "dpo" / "merged" / "model.safetensors").exists()
