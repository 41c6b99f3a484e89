"""General capabilities (paper App. F) through lm-evaluation-harness.

The paper ran TruthfulQA (0-shot), WinoGrande (5), HellaSwag (10), ARC-Challenge (25) and MMLU (5)
with log-likelihood accuracy before and after training. We call the harness in-process with the
same task names, so a GPU run is a config away; runs without internet use the package's own small
multiple-choice task (``shipped``), scored by the same harness code.
"""

from __future__ import annotations

import json
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
    """Score one model on every benchmark: a row {task, metric, num_fewshot, score, se, n} each.

    The model is loaded once; each benchmark is its own harness call, since the harness takes one
    ``num_fewshot`` per call.
    """
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    unknown = [b.task for b in benchmarks if not manager.match_tasks([b.task])]
    if unknown:
        raise CharacterError(
            f"stages.capabilities.benchmarks names task(s) {unknown} that lm-evaluation-harness does not "
            "know; expected harness task names (e.g. arc_challenge) or tasks under include_path."
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
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
        result = output["results"][benchmark.task]
        key = f"{benchmark.metric},none"
        if key not in result:
            raise CharacterError(
                f"benchmark {benchmark.task} reports no metric {benchmark.metric!r}; it reports "
                f"{sorted(k.split(',')[0] for k in result if ',' in k)}."
            )
        stderr = result.get(f"{benchmark.metric}_stderr,none")
        rows.append(
            {
                "task": benchmark.task,
                "metric": benchmark.metric,
                "num_fewshot": int(benchmark.num_fewshot),
                "score": float(result[key]),
                "se": float(stderr) if isinstance(stderr, int | float) else float("nan"),
                "n": int(output["n-samples"][benchmark.task]["effective"]),
            }
        )
    return rows
