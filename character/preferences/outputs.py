"""The named outputs of the ``eval`` stage (revealed preferences), for the report stage to read
them without importing the stage or spelling its folders (no stage module imports another)."""

from __future__ import annotations

from pathlib import Path

from character.judging.check import RESULT_FILE

FOLDER = "preferences"
SUMMARY_FILE = "summary.json"


def change_figure_name(after: str, before: str, condition: str) -> str:
    """The bar chart of the largest rating changes from ``before`` to ``after`` (paper Figure 3)."""
    return f"changes_{after}_vs_{before}_{condition}.png"


class PreferenceOutputs:
    @staticmethod
    def folder(eval_dir: Path) -> Path:
        """Where the stage writes ratings, summary, figures and the judge check."""
        return eval_dir / FOLDER

    @staticmethod
    def summary(eval_dir: Path) -> Path:
        """Invalid rates, largest rating changes, Spearman correlations (``report.report``)."""
        return eval_dir / FOLDER / SUMMARY_FILE

    @staticmethod
    def judge_check(eval_dir: Path) -> Path:
        """The judge's accuracy on cases with a known answer (character/judging/check.py)."""
        return eval_dir / FOLDER / RESULT_FILE
