"""Score the robustness responses of many jobs with one persona classifier per model (§3.2, C.1).

A job sees one persona, but the classifier tells personas apart, so this runs across jobs: for
each model it gathers the ``robustness`` stage outputs of every persona, trains the classifier on
the default (non-adversarial) split of all methods together, as the paper does, and reports
macro-F1 per method on each adversarial split (mean ± SE over them: Figure 5) and on the prefill
attack's second turns (Table 5).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from character.errors import CharacterError
from character.io import atomic_write_json, read_json
from character.pipeline import manifest as mf
from character.pipeline.job_summary import summary_path
from character.pipeline.run_dirs import stage_folder
from character.reporting import grouped_bars, write_tables
from character.robustness.adversarial import DEFAULT_SPLIT
from character.robustness.responses import RobustnessOutputs, read_responses
from character.robustness.scores import macro_f1, robustness_row

log = logging.getLogger("character.robustness")


def find_runs(run_root: Path) -> list[Path]:
    """Run directories under ``run_root`` (``<model>/<persona>``) whose robustness stage finished."""
    return sorted(
        run_dir
        for run_dir in run_root.glob("*/*")
        if (stage_folder(run_dir, RobustnessOutputs.STAGE) / mf.MANIFEST).is_file()
    )


def load_run(run_dir: Path) -> dict[str, Any]:
    """One job's persona, model, and responses by method (and prefill responses by method)."""
    stage_dir = stage_folder(run_dir, RobustnessOutputs.STAGE)
    manifest_path = stage_dir / mf.MANIFEST
    if not manifest_path.exists():
        raise CharacterError(
            f"{run_dir} has no finished robustness stage ({manifest_path} is missing); run "
            "`python -m launchers.train ... +stage=robustness` for it first."
        )
    summary = read_json(summary_path(run_dir))  # a finished job has one; missing is an error
    methods, prefill = RobustnessOutputs.methods(stage_dir), RobustnessOutputs.prefill_methods(stage_dir)
    return {
        "model": summary["model"],
        "persona": summary["persona"],
        # the unprompted base model carries no persona: it is no method of Figure 5 and must not
        # teach the classifier that plain answers belong to every persona
        "responses": {m: read_responses(stage_dir, m) for m in methods if m != "base"},
        "prefill": {m: read_responses(stage_dir, m, prefill=True) for m in prefill},
    }


def score_model(runs: list[dict[str, Any]], classifier_cfg: Any, out_dir: Path, seed: int) -> dict[str, Any]:
    """Train this model's classifier and score every (method, split) and prefill method."""
    from character.robustness.classifier import train_persona_classifier

    personas = sorted({run["persona"] for run in runs})
    if len(personas) < 2:
        raise CharacterError(
            f"model {runs[0]['model']} has robustness responses for {personas} only; the persona "
            "classifier needs at least 2 personas (run the sweep over more personas first)."
        )
    methods = sorted({m for run in runs for m in run["responses"]})
    by_method_split: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for run in runs:
        for method, rows in run["responses"].items():
            for row in rows:
                texts, labels = by_method_split[(method, row["split"])]
                texts.append(row["response"])
                labels.append(run["persona"])
    train_texts = [t for m in methods for t in by_method_split[(m, DEFAULT_SPLIT)][0]]
    train_labels = [lab for m in methods for lab in by_method_split[(m, DEFAULT_SPLIT)][1]]
    classifier = train_persona_classifier(
        train_texts, train_labels, classifier_cfg, out_dir / "classifier", seed
    )
    labels = classifier.labels
    splits = sorted({split for _, split in by_method_split if split != DEFAULT_SPLIT})
    table, f1s = [], {}
    for method in methods:
        per_split = {}
        for split in [DEFAULT_SPLIT, *splits]:
            texts, truth = by_method_split[(method, split)]
            if texts:
                per_split[split] = macro_f1(truth, classifier.predict(texts), labels)
        adversarial = {s: f for s, f in per_split.items() if s != DEFAULT_SPLIT}
        row = robustness_row(per_split[DEFAULT_SPLIT], classifier.heldout_f1, adversarial)
        f1s[method] = per_split
        table.append(
            {
                "method": method,
                "default_f1": row.default_f1,
                "heldout_f1": row.heldout_f1,
                **{f"{s}_f1": f for s, f in adversarial.items()},
                "adversarial_mean": row.adversarial_mean,
                "adversarial_se": row.adversarial_se,
                "adversarial_splits": row.n_adversarial,
            }
        )
    prefill = []
    for method in sorted({m for run in runs for m in run["prefill"]}):
        texts = [row["response"] for run in runs for row in run["prefill"].get(method, [])]
        truth = [run["persona"] for run in runs for _ in run["prefill"].get(method, [])]
        prefill.append({"method": method, "prefill_f1": macro_f1(truth, classifier.predict(texts), labels)})
    return {
        "personas": personas,
        "heldout_f1": classifier.heldout_f1,
        "table": table,
        "f1": f1s,
        "prefill": prefill,
    }


def write_report(results: dict[str, dict[str, Any]], out_dir: Path) -> list[str]:
    """Per model: f1 and prefill tables; across models: the Figure 5 plot; and summary.json."""
    outputs = []
    for model, result in results.items():
        outputs += [f"{model}/{n}" for n in write_tables(out_dir / model / "f1", result["table"])]
        if result["prefill"]:
            outputs += [f"{model}/{n}" for n in write_tables(out_dir / model / "prefill", result["prefill"])]
    methods = sorted({row["method"] for r in results.values() for row in r["table"]})
    lookup = {(m, row["method"]): row for m, r in results.items() for row in r["table"]}
    nan = float("nan")
    grouped_bars(
        out_dir / "robustness.png",
        methods,
        {m: [lookup.get((m, x), {}).get("adversarial_mean", nan) for x in methods] for m in results},
        {m: [lookup.get((m, x), {}).get("adversarial_se", nan) for x in methods] for m in results},
        title="Persona classifier F1 under adversarial prompts (mean ± SE over splits)",
        ylabel="macro-F1",
        ylim=(0.0, 1.0),
    )
    atomic_write_json(out_dir / "summary.json", _finite(results))
    return [*outputs, "robustness.png", "summary.json"]


def _finite(value: Any) -> Any:
    """NaN (the SE of a single split) as null, so summary.json stays standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def run_robustness_report(
    run_dirs: list[Path], classifier_cfg: Any, out_dir: Path, seed: int
) -> dict[str, Any]:
    if not run_dirs:
        raise CharacterError("no run directories with a finished robustness stage were given or found.")
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run_dir in run_dirs:
        run = load_run(run_dir)
        by_model[run["model"]].append(run)
    results = {}
    for model, runs in sorted(by_model.items()):
        log.info("robustness: %s: %d personas", model, len(runs))
        results[model] = score_model(runs, classifier_cfg, out_dir / model, seed)
        for row in results[model]["table"]:
            log.info(
                "robustness: %s / %s: adversarial F1 %.3f ± %.3f (default %.3f)",
                model,
                row["method"],
                row["adversarial_mean"],
                row["adversarial_se"],
                row["default_f1"],
            )
    outputs = write_report(results, out_dir)
    return {"models": results, "outputs": outputs}
