"""General capabilities through lm-evaluation-harness, checked against our own log-likelihoods."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from character.errors import CharacterError
from character.evaluation.capabilities import SHIPPED_DATA, SHIPPED_TASK, evaluate_model, resolve_include_path
from character.evaluation.capabilities_stage import comparison_rows
from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR


@pytest.fixture(scope="module")
def tiny_model() -> str:
    return str(ensure_tiny_model(TinySpec(), CACHE_DIR))


def independent_accuracy(model_path: str) -> float:
    """Zero-shot accuracy computed directly: argmax over choices of sum log p(" choice" | question)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    docs = [json.loads(line) for line in (SHIPPED_DATA / "mini_mc.jsonl").read_text().splitlines()]
    correct = 0
    for doc in docs:
        context = f"Question: {doc['question']}\nAnswer:"
        context_ids = tokenizer(context, add_special_tokens=False).input_ids
        scores = []
        for choice in doc["choices"]:
            whole = tokenizer(context + " " + choice, add_special_tokens=False).input_ids
            continuation = whole[len(context_ids) :]
            with torch.no_grad():
                logits = model(torch.tensor([whole])).logits[0]
            logprobs = torch.log_softmax(logits[:-1].double(), dim=-1)
            positions = range(len(whole) - len(continuation) - 1, len(whole) - 1)
            scores.append(sum(float(logprobs[p, whole[p + 1]]) for p in positions))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    return correct / len(docs)


def test_harness_accuracy_equals_an_independent_log_likelihood_computation(tiny_model, tmp_path) -> None:
    include = resolve_include_path("shipped", tmp_path)
    benchmark = SimpleNamespace(task=SHIPPED_TASK, num_fewshot=0, metric="acc")
    [row] = evaluate_model(
        tiny_model, [benchmark], include_path=include, limit=None, batch_size=8, device="cpu",
        dtype="float32", seed=0,
    )  # fmt: skip
    assert row["n"] == 40 and row["task"] == SHIPPED_TASK and row["num_fewshot"] == 0
    assert row["score"] == pytest.approx(independent_accuracy(tiny_model))
    p = row["score"]
    assert row["se"] == pytest.approx((p * (1 - p) / (40 - 1)) ** 0.5)  # the harness's sample SE


def test_unknown_tasks_metrics_and_folders_are_clear_errors(tiny_model, tmp_path) -> None:
    include = resolve_include_path("shipped", tmp_path)
    with pytest.raises(CharacterError, match=r"task\(s\) \['no_such_task'\]"):
        evaluate_model(
            tiny_model, [SimpleNamespace(task="no_such_task", num_fewshot=0, metric="acc")],
            include_path=include, limit=2, batch_size=8, device="cpu", dtype="float32", seed=0,
        )  # fmt: skip
    with pytest.raises(CharacterError, match="no metric 'f1'.*acc"):
        evaluate_model(
            tiny_model, [SimpleNamespace(task=SHIPPED_TASK, num_fewshot=0, metric="f1")],
            include_path=include, limit=2, batch_size=8, device="cpu", dtype="float32", seed=0,
        )  # fmt: skip
    with pytest.raises(CharacterError, match="include_path = '/nonexistent/tasks' is not a folder"):
        resolve_include_path("/nonexistent/tasks", tmp_path)


def test_comparison_rows_are_points_out_of_100() -> None:
    before = [{"task": "t", "num_fewshot": 5, "metric": "acc", "score": 0.5, "se": 0.01, "n": 10}]
    after = [{"task": "t", "num_fewshot": 5, "metric": "acc", "score": 0.625, "se": 0.02, "n": 10}]
    [row] = comparison_rows(before, after)
    assert row["benchmark"] == "t (5-shot acc)"
    assert (row["before"], row["after"], row["change"]) == (50.0, 62.5, 12.5)
    assert (row["before_se"], row["after_se"]) == (1.0, 2.0)


def test_the_shipped_task_is_balanced_over_answer_positions() -> None:
    docs = [json.loads(line) for line in (SHIPPED_DATA / "mini_mc.jsonl").read_text().splitlines()]
    assert len(docs) == 40 and all(len(d["choices"]) == 4 for d in docs)
    assert sorted({sum(d["answer"] == k for d in docs) for k in range(4)}) == [10]


def test_paper_benchmarks_are_the_default(tmp_path: Path) -> None:
    from character.config.schema import CapabilitiesStageConfig

    tasks = [(b.task, b.num_fewshot) for b in CapabilitiesStageConfig().benchmarks]
    assert tasks == [
        ("truthfulqa_mc1", 0),
        ("winogrande", 5),
        ("hellaswag", 10),
        ("arc_challenge", 25),
        ("mmlu", 5),
    ]
