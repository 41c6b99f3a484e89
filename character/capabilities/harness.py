"""General capabilities (paper App. F) through lm-evaluation-harness.

The paper ran TruthfulQA (0-shot), WinoGrande (5), HellaSwag (10), ARC-Challenge (25) and MMLU (5)
with log-likelihood accuracy before and after training. We call the harness in-process with the
same task names, so a GPU run is a config away; runs without internet use the package's own small
multiple-choice task (``shipped``), scored by the same harness code.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from character.errors import CharacterError
from character.io import atomic_write_text

SHIPPED_DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
SHIPPED_TASK = "character_mini_mc"

# The harness reads tasks from YAML; the data path must be absolute, so the file is written at run
# time next to the results rather than shipped with a path baked in.
_TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
fewshot_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def write_shipped_tasks(task_dir: Path) -> Path:
    """Write the package's task YAML(s) into ``task_dir``; returns it for ``include_path``."""
    atomic_write_text(
        task_dir / f"{SHIPPED_TASK}.yaml",
        _TASK_YAML.format(name=SHIPPED_TASK, data=json.dumps(str(SHIPPED_DATA / "mini_mc.jsonl"))),
    )
    return task_dir


def resolve_include_path(include_path: str | None, work_dir: Path) -> str | None:
    if include_path is None:
        return None
    if include_path == "shipped":
        return str(write_shipped_tasks(work_dir / "tasks"))
    path = Path(include_path).expanduser()
    if not path.is_dir():
        raise CharacterError(
            f"stages.capabilities.include_path = {include_path!r} is not a folder; expected a folder "
            "of lm-evaluation-harness task YAMLs, 'shipped', or null."
        )
    return str(path)


def leaf_tasks(output: dict[str, Any], name: str) -> list[str]:
    """The tasks that were run under ``name``: itself for a task, its leaves (through nested
    groups) for a group, from the harness's ``group_subtasks``."""
    children = output.get("group_subtasks", {}).get(name)  # only groups are keys
    if children is None:
        return [name]
    return [leaf for child in children for leaf in leaf_tasks(output, child)]


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")  # the harness writes "N/A"


def benchmark_result(output: dict[str, Any], task: str, metric: str) -> tuple[float, float, int, list[str]]:
    """(score, SE, documents, leaf tasks) of a task or a group in one ``simple_evaluate`` output.

    The harness (0.4.13) counts documents (``n-samples``) for leaf tasks only, so a group's count
    is the sum over its leaves. A group's score is the harness's own aggregate when the group
    defines one (``aggregate_metric_list``: ``results[group]``); a group without one (its results
    entry holds no metric) is aggregated here the way the harness aggregates by default: the
    mean of the leaves weighted by their document counts, with the pooled SE, through the
    harness's own ``aggregate_subtask_metrics`` and ``pooled_sample_stderr``.
    """
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr

    key, stderr_key = f"{metric},none", f"{metric}_stderr,none"
    results = output["results"]
    groups = output.get("group_subtasks", {})
    if task not in results and task not in groups:  # a tag: several tasks, nothing to aggregate
        raise CharacterError(
            f"benchmark {task} ran as the tasks {sorted(results)[:10]} without a group score (a "
            "harness tag, not a group); name one of those tasks, or a group that aggregates them."
        )
    leaves = leaf_tasks(output, task)
    sizes = [int(output["n-samples"][leaf]["effective"]) for leaf in leaves]
    result = results.get(task, {})
    if key in result:  # a task, or a group the harness aggregated
        return float(result[key]), _float(result.get(stderr_key)), sum(sizes), leaves
    lacking = [leaf for leaf in leaves if key not in results.get(leaf, {})]
    if lacking or task not in groups:
        reported = sorted({k.split(",")[0] for leaf in leaves for k in results.get(leaf, {}) if "," in k})
        raise CharacterError(
            f"benchmark {task} reports no metric {metric!r}"
            + (f" (lacking in {lacking[:5]})" if task in groups else "")
            + f"; it reports {reported}."
        )
    scores = [float(results[leaf][key]) for leaf in leaves]
    stderrs = [_float(results[leaf].get(stderr_key)) for leaf in leaves]
    score = float(aggregate_subtask_metrics(scores, sizes, True))
    se = float("nan") if any(map(math.isnan, stderrs)) else float(pooled_sample_stderr(stderrs, sizes))
    return score, se, sum(sizes), leaves


@functools.cache
def _indexed_tasks(include_path: str | None, with_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=with_defaults)


def task_manager(include_path: str | None, tasks: Sequence[str]):
    """The harness's task index for ``tasks``, built once per process and kind.

    Indexing the harness's own ~14,700 task configs takes about 15 s on 2 cores, and a stage
    scores two models. When every benchmark is a task (not a group or tag, whose members may be
    the harness's) found under ``include_path``, as the shipped task is, that folder alone is
    indexed; otherwise the full index, in which ``include_path`` takes precedence as before.
    """
    if include_path:
        own = _indexed_tasks(include_path, False)
        if all(task in own.all_subtasks for task in tasks):
            return own
    return _indexed_tasks(include_path, True)


def evaluate_model(
    model_path: str,
    benchmarks: Sequence[Any],
    *,
    include_path: str | None,
    limit: int | None,
    batch_size: int,
    device: str,
    dtype: str,
    seed: int,
) -> list[dict[str, Any]]:
    """Score one model on every benchmark: a row {task, metric, num_fewshot, score, se, n, leaves}
    each. A benchmark may be a task or a group (``mmlu``): ``benchmark_result`` reads either.

    The model is loaded once; each benchmark is its own harness call, since the harness takes one
    ``num_fewshot`` per call.
    """
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    from openrlhf_ext.precision import engine_dtype

    manager = task_manager(include_path, tuple(b.task for b in benchmarks))
    unknown = [b.task for b in benchmarks if not manager.match_tasks([b.task])]
    if unknown:
        raise CharacterError(
            f"stages.capabilities.benchmarks names task(s) {unknown} that lm-evaluation-harness does not "
            "know; expected harness task names (e.g. arc_challenge) or tasks under include_path."
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = engine_dtype(dtype, on_cpu=device == "cpu")  # auto: fp32 on a CPU without fast bf16
    model = HFLM(pretrained=model_path, dtype=dtype, device=device, batch_size=batch_size)
    rows: list[dict[str, Any]] = []
    for benchmark in benchmarks:
        output = lm_eval.simple_evaluate(
            model=model,
            tasks=[benchmark.task],
            num_fewshot=int(benchmark.num_fewshot),
            task_manager=manager,
            limit=limit,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            log_samples=False,
        )
        score, se, n, leaves = benchmark_result(output, benchmark.task, benchmark.metric)
        rows.append(
            {
                "task": benchmark.task,
                "metric": benchmark.metric,
                "num_fewshot": int(benchmark.num_fewshot),
                "score": score,
                "se": se,
                "n": n,
                "leaves": leaves,
            }
        )
    return rows
