"""Link the sweep's robustness report (paper Figure 5) from the comparison.

Macro-F1 per method and split needs a classifier trained across personas, which
``launchers.robustness`` does and writes to ``<run_root>/.robustness`` by default; the comparison
does not train it again, it finds that report (or the folder given as ``robustness_dir``) and
links its plot and tables, with the adversarial mean ± SE per method and model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from character.compare.run_files import finished
from character.io import read_json

DEFAULT_DIR = ".robustness"


def find_reports(run_dirs: list[Path], robustness_dir: str | None) -> list[Path]:
    """Report folders holding a ``summary.json``: the one configured, else each run root's default."""
    if robustness_dir:
        candidates = [Path(robustness_dir)]
    else:
        candidates = list(dict.fromkeys(run_dir.parent.parent / DEFAULT_DIR for run_dir in run_dirs))
    return [path for path in candidates if (path / "summary.json").is_file()]


def _number(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _link(path: Path, out_dir: Path) -> str:
    """Relative to the comparison, so the links work wherever the two folders are moved together."""
    return os.path.relpath(path, out_dir)


def robustness_section(run_dirs: list[Path], robustness_dir: str | None, out_dir: Path) -> list[str]:
    """Markdown lines: links and the F1 table of each report found; a hint when the runs have
    robustness responses but no report; nothing when neither."""
    reports = find_reports(run_dirs, robustness_dir)
    if not reports:
        if any(finished(run_dir, "robustness") for run_dir in run_dirs):
            return [
                "## Robustness: persona classifier macro-F1 (paper Figure 5)",
                "",
                "No robustness report found (looked for "
                + (robustness_dir or f"<run_root>/{DEFAULT_DIR}")
                + "/summary.json); `python -m launchers.robustness` writes it from these runs.",
            ]
        return []
    lines = ["## Robustness: persona classifier macro-F1 (paper Figure 5)"]
    for report in reports:
        summary = read_json(report / "summary.json")
        lines += ["", f"From `{report}`: [robustness.png]({_link(report / 'robustness.png', out_dir)})"]
        lines += [
            f"- {model}: [f1.md]({_link(report / model / 'f1.md', out_dir)})" for model in sorted(summary)
        ]
        lines += [
            "",
            "| model | method | default F1 | adversarial F1 (mean ± SE) | splits |",
            "|---|---|---|---|---|",
        ]
        for model, result in sorted(summary.items()):
            for row in result.get("table", []):
                lines.append(
                    f"| {model} | {row['method']} | {_number(row.get('default_f1'))} | "
                    f"{_number(row.get('adversarial_mean'))} ± {_number(row.get('adversarial_se'))} | "
                    f"{row.get('adversarial_splits', '')} |"
                )
    return lines
