"""General capabilities through lm-evaluation-harness, checked against our own log-likelihoods."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from character.capabilities.harness import (
    _TASK_YAML,
    SHIPPED_DATA,
    SHIPPED_TASK,
    benchmark_result,
    evaluate_model,
    resolve_include_path,
    task_manager,
)
from character.capabilities.stage import comparison_rows
from character.errors import CharacterError
from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR


@pytest.fixture(scope="module")
def tiny_model() -> str:
    return str(ensure_tiny_model(TinySpec(), CACHE_DIR))


def independent_correct(model_path: str) -> list[bool]:
    """Zero-shot, per shipped question: is argmax over choices of sum log p(" choice" | question)
    the answer?"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    docs = [json.loads(line) for line in (SHIPPED_DATA / "mini_mc.jsonl").read_text().splitlines()]
    correct = []
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
        correct.append(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    return correct


def independent_accuracy(model_path: str) -> float:
    correct = independent_correct(model_path)
    return sum(correct) / len(correct)


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


def test_the_include_path_alone_is_indexed_when_it_holds_every_task(tmp_path) -> None:
    include = resolve_include_path("shipped", tmp_path)
    own = task_manager(include, [SHIPPED_TASK])
    assert own.all_tasks == [SHIPPED_TASK]  # none of the harness's own configs was read
    assert task_manager(include, (SHIPPED_TASK,)) is own  # built once per process
    write_group(Path(include), 25)  # a group: its members might be the harness's tasks
    for tasks in ([SHIPPED_TASK, "arc_easy"], ["mini_group"]):
        full = task_manager(include, tasks)
        assert {SHIPPED_TASK, "mini_group", "arc_easy"} <= set(full.all_tasks) and full is not own


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


def write_group(task_dir: Path, split: int) -> None:
    """A real harness group over two local leaf tasks, the shipped questions split in two
    (``split`` and 40 - ``split`` documents): ``mini_group`` aggregates acc itself (weighted by
    size, as the harness's mmlu does), ``mini_group_plain`` declares no aggregation."""
    lines = (SHIPPED_DATA / "mini_mc.jsonl").read_text().splitlines(keepends=True)
    for name, part in (("mini_a", lines[:split]), ("mini_b", lines[split:])):
        (task_dir / f"{name}.jsonl").write_text("".join(part))
        data = json.dumps(str(task_dir / f"{name}.jsonl"))
        (task_dir / f"{name}.yaml").write_text(_TASK_YAML.format(name=name, data=data))
    (task_dir / "mini_group.yaml").write_text(
        "group: mini_group\ntask: [mini_a, mini_b]\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
    )
    (task_dir / "mini_group_plain.yaml").write_text("group: mini_group_plain\ntask: [mini_a, mini_b]\n")


def test_a_group_is_scored_over_its_leaves(tiny_model, tmp_path) -> None:
    write_group(tmp_path, 25)
    groups = [
        SimpleNamespace(task=name, num_fewshot=0, metric="acc") for name in ("mini_group", "mini_group_plain")
    ]
    rows = evaluate_model(
        tiny_model, groups, include_path=str(tmp_path), limit=None, batch_size=8, device="cpu",
        dtype="float32", seed=0,
    )  # fmt: skip
    correct = independent_correct(tiny_model)
    sizes, parts = (25, 15), (correct[:25], correct[25:])
    leaf_p = [sum(part) / len(part) for part in parts]
    leaf_se = [(p * (1 - p) / (n - 1)) ** 0.5 for p, n in zip(leaf_p, sizes, strict=True)]  # the harness's
    # pooled over the leaves (lm_eval's pooled_sample_stderr, written out)
    pooled = (sum((n - 1) * se**2 * n for n, se in zip(sizes, leaf_se, strict=True)) / (40 - 2) / 40) ** 0.5
    for row in rows:  # the harness's own aggregate, and ours for the group that declares none
        assert row["n"] == 40 and row["leaves"] == ["mini_a", "mini_b"]
        # the size-weighted mean of the two halves is the accuracy over all 40 questions
        assert row["score"] == pytest.approx(sum(correct) / 40)
        assert row["score"] == pytest.approx((25 * leaf_p[0] + 15 * leaf_p[1]) / 40)
        assert row["se"] == pytest.approx(pooled)
    with pytest.raises(
        CharacterError, match=r"benchmark mini_group_plain reports no metric 'f1' \(lacking in"
    ):
        evaluate_model(
            tiny_model, [SimpleNamespace(task="mini_group_plain", num_fewshot=0, metric="f1")],
            include_path=str(tmp_path), limit=2, batch_size=8, device="cpu", dtype="float32", seed=0,
        )  # fmt: skip


def test_nested_groups_sum_their_leaves_and_tags_are_named() -> None:
    """The harness's output layout (0.4.13) for a group of a group, without a group aggregate."""
    leaf = lambda acc, n: {"acc,none": acc, "acc_stderr,none": "N/A", "sample_len": n}  # noqa: E731
    output = {
        "results": {"top": {"alias": "top"}, "mid": {"alias": "mid"}, "x": leaf(0.5, 10), "y": leaf(1.0, 30),
                    "z": leaf(0.0, 20)},
        "group_subtasks": {"top": ["mid", "z"], "mid": ["x", "y"]},
        "n-samples": {name: {"original": n, "effective": n} for name, n in (("x", 10), ("y", 30), ("z", 20))},
    }  # fmt: skip
    score, se, n, leaves = benchmark_result(output, "top", "acc")
    assert (leaves, n) == (["x", "y", "z"], 60)
    assert score == pytest.approx((0.5 * 10 + 1.0 * 30) / 60) and math.isnan(se)  # no leaf SE: none
    assert benchmark_result(output, "y", "acc")[:3] == (1.0, pytest.approx(math.nan, nan_ok=True), 30)
    del output["results"]["top"], output["group_subtasks"]["top"]
    with pytest.raises(CharacterError, match=r"benchmark top ran as the tasks .*\(a harness tag"):
        benchmark_result(output, "top", "acc")
