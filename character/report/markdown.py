"""The sections of ``report.md``, each built from one stage's recorded outputs.

Each function returns markdown lines and reads only files the stages wrote, so the report can be
rebuilt at any time from a run directory without loading a model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from character.io import read_json
from character.preferences.outputs import PreferenceOutputs
from character.reporting import EvaluationOutputs, markdown_table
from character.robustness.adversarial import DEFAULT_SPLIT
from character.robustness.responses import read_responses


def pct(entry: dict[str, float] | None) -> str:
    """``62.5 % [49.4, 74.1]`` for a proportion with its interval; ``n/a`` when not measured."""
    if not entry or not entry.get("n") or math.isnan(entry["rate"]):
        return "n/a"
    return f"{100 * entry['rate']:.1f} % [{100 * entry['low']:.1f}, {100 * entry['high']:.1f}]"


def headline(results: dict[str, Any]) -> list[str]:
    """The claims the job measured, each with its numbers, in the order a reader asks them."""
    rates, accuracy = results["persona_rate"], results["preference_accuracy"]
    base, final = rates["base"][DEFAULT_SPLIT], rates["trained"][DEFAULT_SPLIT]
    lines = [
        f"- **Persona rate** on held-out prompts, no system prompt: base {pct(base)} -> final "
        f"{pct(final)} ({100 * (final['rate'] - base['rate']):+.1f} points; intervals "
        f"{'do not overlap' if final['low'] > base['high'] else 'overlap'})."
    ]
    vs_prompted = results.get("persona_rate_vs_prompted", {}).get("trained", {})
    if "prompted" in rates:
        lines.append(
            f"- The base model prompted with the constitution: {pct(rates['prompted'][DEFAULT_SPLIT])}"
            + rate_difference(vs_prompted.get(DEFAULT_SPLIT))
            + "."
        )
    if "adversarial" in rates["trained"]:
        prompted = rates.get("prompted", {}).get("adversarial")
        against = f", prompted base {pct(prompted)}" + rate_difference(vs_prompted.get("adversarial"))
        lines.append(
            "- **Under the paper's adversarial instructions** (App. C): final "
            f"{pct(rates['trained']['adversarial'])}" + (against if prompted else "") + "."
        )
    lines.append(
        "- **Held-out preference accuracy** (does training prefer the teacher's answer on pairs it "
        f"never saw?): after DPO {pct(accuracy.get('distilled'))}, final {pct(accuracy.get('trained'))}."
    )
    lines += quality_headline(results)
    check = results["classifier"]["held_out_accuracy"]
    lines.append(
        "- The persona classifier itself (teacher vs student answers to held-out prompts): "
        f"accuracy {pct(check)}."
    )
    lines += checks_headline(results.get("checks"))
    return lines


def check_name(name: str, check: dict[str, Any]) -> str:
    """How the report names a check of character.persona_shift.checks, with its bar."""
    if name == "shift":
        return f"final - base >= {100 * check['min_shift']:.0f} points with intervals apart"
    if name == "preference_accuracy":
        return f"preference accuracy after DPO >= {check['min_accuracy']:.2f}"
    return {
        "vs_prompted": "final >= prompted",
        "adversarial": "adversarial: final > prompted",
        "quality": "quality: final not more degenerate than prompted",
    }.get(name, name)


def checks_headline(checks: dict[str, Any] | None) -> list[str]:
    """``- **Checks**: 4 of 5 held (...); missed: final >= prompted.``, naming the unmeasured ones too."""
    if not checks:
        return []
    named: dict[bool | None, list[str]] = {True: [], False: [], None: []}
    for name, check in checks.items():
        named[check["held"]].append(check_name(name, check))
    held, missed, unmeasured = named[True], named[False], named[None]
    line = f"- **Checks**: {len(held)} of {len(held) + len(missed)} held"
    line += f" ({'; '.join(held)})" if held else ""
    line += f"; missed: {'; '.join(missed)}" if missed else ""
    line += f"; not measured: {'; '.join(unmeasured)}" if unmeasured else ""
    return [line + "."]


def difference(entry: dict[str, float], digits: int) -> str:
    """``+0.20 [-0.31, 0.64]`` for a paired difference with its interval."""
    return f"{entry['value']:+.{digits}f} [{entry['low']:+.{digits}f}, {entry['high']:+.{digits}f}]"


def rate_difference(entry: dict[str, float] | None) -> str:
    """``; final - prompted -12.5 points [-33.3, +8.3], paired by prompt`` (empty when not measured),
    with what the interval says about the two."""
    if not entry or not entry.get("n") or math.isnan(entry["low"]):
        return ""
    if entry["low"] > 0:
        verdict = "measurably above"
    elif entry["high"] < 0:
        verdict = "measurably below"
    else:
        verdict = "not measurably different"
    return (
        f"; final - prompted {100 * entry['value']:+.1f} points [{100 * entry['low']:+.1f}, "
        f"{100 * entry['high']:+.1f}], paired by prompt: {verdict}"
    )


def quality_headline(results: dict[str, Any]) -> list[str]:
    """The final model's answer quality against the prompted base model's (paired by prompt)."""
    comparison = results.get("quality_vs_prompted", {}).get("trained")
    if not comparison:
        return []
    quality, diffs = results["quality"], comparison["differences"]
    verdict = "more degenerate" if comparison["more_degenerate"] else "not measurably more degenerate"
    return [
        "- **Answer quality**, final vs prompted base (paired by prompt, 95 % bootstrap intervals): "
        f"base perplexity median {quality['trained']['base_perplexity_median']:.2f} vs "
        f"{quality['prompted']['base_perplexity_median']:.2f} (difference "
        f"{difference(diffs['base_perplexity'], 2)}); repetition {quality['trained']['repetition']:.4f} vs "
        f"{quality['prompted']['repetition']:.4f} (difference {difference(diffs['repetition'], 4)}): "
        f"{verdict}."
    ]


def with_interval(entry: dict[str, float], digits: int) -> str:
    """``7.31 [6.90, 7.80]`` for a summary with its interval; the value alone when too few answers
    gave no interval."""
    if math.isnan(entry["low"]):
        return f"{entry['value']:.{digits}f}"
    return f"{entry['value']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def persona_tables(results: dict[str, Any]) -> list[str]:
    rates, quality = results["persona_rate"], results["quality"]
    rows = [
        {
            "variant": label,
            "persona rate": pct(rates[m][DEFAULT_SPLIT]),
            "adversarial": pct(rates[m].get("adversarial")),
            "repetition": with_interval(quality[m]["repetition_interval"], 3),
            "base perplexity": with_interval(quality[m]["base_perplexity_interval"], 1),
            "words": f"{quality[m]['words_mean']:.0f}",
        }
        for m, label in results["variants"].items()
    ]
    return [
        markdown_table(rows),
        "",
        "Persona rate: share of answers a classifier trained on this job's teacher vs student "
        "answers judges in persona (95 % Wilson intervals). Repetition: share of repeated word "
        "4-grams (mean); base perplexity: median perplexity of the answer under the untrained model; "
        "both with 95 % bootstrap intervals over prompts; words: mean answer length. A degenerate "
        "model shows high repetition or perplexity.",
    ]


def judge_check_lines(path: Path) -> list[str]:
    """How the judge did on cases the job built with a known answer (``judge_check.json``), so a
    weak judge reads as weak rather than as confident noise."""
    if not path.exists():
        return []
    check = read_json(path)
    entries = check.get("judges", [check])
    lines = [
        f"- **Judge check** ({entry.get('judge', 'judge')}): {pct(entry['accuracy'])} correct on "
        f"{entry['cases']} known-answer cases (chance {100 * entry.get('chance', 0.5):.0f} %)."
        for entry in entries
    ]
    return [*lines, ""]


def link(path: Path, report_dir: Path) -> str:
    """``path`` as the report (written in ``report_dir``) links to it."""
    return Path(os.path.relpath(path, report_dir)).as_posix()


def preferences_section(eval_dir: Path, report_dir: Path) -> list[str]:
    path = PreferenceOutputs.summary(eval_dir)
    if not path.exists():
        return ["(no revealed-preference results)"]
    summary = read_json(path)
    lines = judge_check_lines(PreferenceOutputs.judge_check(eval_dir))
    validity = [
        {"subject": subject, "condition": condition, "invalid rate": values.get("invalid_rate")}
        for subject, conditions in summary.get("subjects", {}).items()
        for condition, values in conditions.items()
    ]
    if validity:
        lines += [markdown_table(validity), ""]
    for key, changes in summary.get("comparisons", {}).items():
        rises = ", ".join(f"{trait} ({delta:+.0f})" for trait, delta in changes["rises"])
        falls = ", ".join(f"{trait} ({delta:+.0f})" for trait, delta in changes["falls"])
        lines += [f"- {key}: largest rises {rises}; largest falls {falls}."]
        figure = PreferenceOutputs.folder(eval_dir) / summary.get("change_figures", {}).get(key, "")
        if figure.is_file():
            lines += ["", f"![revealed preferences]({link(figure, report_dir)})"]
    for pair, rho in summary.get("spearman", {}).items():
        lines.append(f"- Spearman correlation of trait ratings {pair}: {rho}.")
    return lines


def table_file_section(outputs: EvaluationOutputs, stage_dir: Path, report_dir: Path) -> list[str]:
    """A stage's own markdown table and figure, as it wrote them."""
    table = outputs.markdown(stage_dir)
    if not table.exists():
        return [f"(no {outputs.stem} results)"]
    lines = [*judge_check_lines(outputs.judge_check(stage_dir)), table.read_text().rstrip()]
    if outputs.figure(stage_dir).exists():
        lines += ["", f"![{outputs.stem}]({link(outputs.figure(stage_dir), report_dir)})"]
    return lines


def examples_section(robustness_dir: Path, count: int) -> list[str]:
    """The first ``count`` held-out prompts with the base and the final model's answers."""

    def plain(method: str) -> dict[int, dict[str, Any]]:
        rows = read_responses(robustness_dir, method)
        return {r["prompt_index"]: r for r in rows if r["split"] == DEFAULT_SPLIT}

    base, final = plain("base"), plain("trained")
    lines = []
    for index in sorted(set(base) & set(final))[:count]:
        lines += [
            f"**Prompt:** {base[index]['prompt']}",
            "",
            "| base | final |",
            "|---|---|",
            f"| {_cell(base[index]['response'])} | {_cell(final[index]['response'])} |",
            "",
        ]
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
