"""What the results views read from a run directory: the recorded judgments, not the summaries.

The paper's views across a sweep (Elo ratings, Spearman correlations across models, coherence
averaged over personas) need each run's individual judgments, which only the run directory holds
(W&B keeps the numbers and media of a job, not its JSONL files). A record read from W&B still finds
its run directory when the job's ``pipeline/run_dir`` is reachable from here. Only finished stages
(those with a manifest) are read, so a stage stopped half-way contributes nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from character.coherence.judgments import WinRate, outcomes_from_judgments, win_rate
from character.compare.records import RunRecord
from character.io import read_jsonl
from character.judging.parsing import parse_verdict
from character.pipeline import manifest as mf
from character.pipeline.job_summary import summary_path
from character.pipeline.run_dirs import stage_folder
from character.preferences.comparisons import outcomes_from
from character.preferences.outputs import PreferenceOutputs
from character.preferences.traits import TRAITS

PREFERENCES = PreferenceOutputs.folder(Path("eval"))
COHERENCE_JUDGMENTS = Path("coherence") / "judgments"
# the eval stage's subjects, in the order the views compare them
SUBJECTS = ("before", "after")

Key = tuple[str, str]  # (subject, condition) or (judge, pair)


def run_dir_of(record: RunRecord) -> Path | None:
    """The record's run directory where it exists here: its source (local runs), or the
    ``pipeline/run_dir`` a job logged to W&B; None otherwise (e.g. a W&B server run elsewhere)."""
    for candidate in (record.source, record.values.get("pipeline/run_dir")):
        if isinstance(candidate, str) and summary_path(Path(candidate)).is_file():
            return Path(candidate)
    return None


def finished(run_dir: Path, stage: str) -> bool:
    return mf.read_manifest(stage_folder(run_dir, stage)) is not None


def preference_outcomes(run_dir: Path) -> dict[Key, tuple[list[tuple[int, int]], int]]:
    """(subject, condition) -> ((winner, loser) trait indices of the valid verdicts, judged count),
    from ``eval/preferences/judgments_<subject>.jsonl``, parsed as the eval stage parsed them."""
    if not finished(run_dir, "eval"):
        return {}
    result: dict[Key, tuple[list[tuple[int, int]], int]] = {}
    for path in sorted((run_dir / PREFERENCES).glob("judgments_*.jsonl")):
        subject = path.stem.removeprefix("judgments_")
        if subject not in SUBJECTS:
            continue
        judged = [
            {
                "condition": row["condition"],
                "trait_1": row["trait_1"],
                "trait_2": row["trait_2"],
                "verdict": parse_verdict(row["texts"][0], (row["trait_1"], row["trait_2"])),
            }
            for row in read_jsonl(path)
        ]
        for condition in dict.fromkeys(row["condition"] for row in judged):
            outcomes, _, total = outcomes_from(judged, condition)
            result[(subject, condition)] = (outcomes, total)
    return result


def bradley_terry_ratings(run_dir: Path) -> dict[Key, np.ndarray]:
    """(subject, condition) -> the eval stage's Bradley-Terry ratings (``ratings.csv``), in
    ``TRAITS`` order."""
    path = run_dir / PREFERENCES / "ratings.csv"
    if not finished(run_dir, "eval") or not path.is_file():
        return {}
    index = {trait: i for i, trait in enumerate(TRAITS)}
    ratings: dict[Key, np.ndarray] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["subject"], row["condition"])
            if key[0] in SUBJECTS and row["trait"] in index:
                values = ratings.setdefault(key, np.full(len(TRAITS), np.nan))
                values[index[row["trait"]]] = float(row["bt_rating"])
    return ratings


def coherence_win_rates(run_dir: Path) -> dict[Key, WinRate]:
    """(judge, "a vs b") -> the first method's win rate, recounted from the recorded verdicts
    (``coherence/judgments/<judge>/<a>_vs_<b>.jsonl``) as the coherence stage counts them."""
    if not finished(run_dir, "coherence"):
        return {}
    rates: dict[Key, WinRate] = {}
    for path in sorted((run_dir / COHERENCE_JUDGMENTS).glob("*/*_vs_*.jsonl")):
        pair = path.stem.replace("_vs_", " vs ", 1)
        rates[(path.parent.name, pair)] = win_rate(outcomes_from_judgments(read_jsonl(path)))
    return rates
