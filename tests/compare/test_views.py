"""The paper's results views of launchers.compare on a real 2-model x 2-persona tiny sweep.

Every number is recomputed here from the run directories' recorded judgments, parsed by this
test's own code: Elo with ``mean_elo`` (itself checked in tests/preferences/test_ratings.py), rho
with scipy.stats.spearmanr, and the coherence averages by hand. The tiny judge's verdicts are
degenerate (it prefers no response consistently), so a second test plants judgments of known
content in a copy of the runs: win rates with a hand-computed mean and SE, identical "after"
ratings (rho exactly 1) and a run without any valid verdict (constant ratings, rho undefined).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from character.compare.config import CompareConfig
from character.compare.report import compare
from character.io import read_json, read_jsonl
from character.preferences.ratings import mean_elo
from character.preferences.traits import TRAITS
from tests.compare.paper_sweep import MODELS, PERSONAS, PaperSweep
from tests.conftest import REPO

ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
SUBJECTS = ("before", "after")


def config(out_dir: Path, **values) -> CompareConfig:
    return OmegaConf.merge(OmegaConf.structured(CompareConfig), {"out_dir": str(out_dir), **values})


def answer(text: str) -> str | None:
    found = ANSWER.findall(text)
    return found[-1] if found else None


def elo_from_judgments(run_dir: Path, subject: str) -> np.ndarray:
    """The "like" condition's outcomes, parsed here, rated with the documented defaults."""
    index = {trait: i for i, trait in enumerate(TRAITS)}
    outcomes = []
    for row in read_jsonl(run_dir / "eval" / "preferences" / f"judgments_{subject}.jsonl"):
        pair = (row["trait_1"], row["trait_2"])
        if row["condition"] == "like" and answer(row["texts"][0]) in pair:
            winner = answer(row["texts"][0])
            outcomes.append((index[winner], index[pair[1] if winner == pair[0] else pair[0]]))
    return mean_elo(outcomes, len(TRAITS), k=32, start=1000, passes=100, seed=0)


def bt_from_ratings_csv(run_dir: Path, subject: str) -> np.ndarray:
    frame = pd.read_csv(run_dir / "eval" / "preferences" / "ratings.csv")
    frame = frame[(frame["subject"] == subject) & (frame["condition"] == "like")].set_index("trait")
    return frame.loc[list(TRAITS), "bt_rating"].to_numpy(dtype=float)


def rho(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns, and gives NaN, for a constant input
        return float(spearmanr(a, b).statistic)


def same(actual: float, expected: float) -> bool:
    return (math.isnan(actual) and math.isnan(expected)) or actual == pytest.approx(expected, abs=1e-9)


def check_elo(out_dir: Path, run_root: Path) -> None:
    ratings = pd.read_csv(out_dir / "views" / "elo_ratings.csv")
    for model, persona, subject in itertools.product(MODELS, PERSONAS, SUBJECTS):
        rows = ratings[
            (ratings["model"] == model) & (ratings["persona"] == persona) & (ratings["subject"] == subject)
        ]
        assert rows["trait"].tolist() == list(TRAITS)
        expected = elo_from_judgments(run_root / model / persona, subject)
        assert rows["elo"].to_numpy() == pytest.approx(expected, abs=1e-3)
        bt = bt_from_ratings_csv(run_root / model / persona, subject)
        assert rows["bt_rating"].to_numpy(dtype=float) == pytest.approx(bt)
    for model, persona in itertools.product(MODELS, PERSONAS):  # Figure 3: a run's largest changes
        assert (
            matplotlib.image.imread(out_dir / "views" / "figure3" / f"{model}__{persona}__like.png").ndim == 3
        )
    for persona in PERSONAS:  # Figure 4: distributions before and after, a panel per model
        assert matplotlib.image.imread(out_dir / "views" / "figure4" / f"{persona}__like.png").ndim == 3


def check_spearman(out_dir: Path, run_root: Path) -> pd.DataFrame:
    table = pd.read_csv(out_dir / "views" / "spearman.csv")
    assert len(table) == len(PERSONAS) * 2  # one model pair per persona, elo and bt
    expected_means: dict[tuple[str, str], list[float]] = {}
    for persona, kind in itertools.product(PERSONAS, ("elo", "bt")):
        [row] = table[(table["persona"] == persona) & (table["ratings"] == kind)].to_dict("records")
        assert (row["model_a"], row["model_b"], row["condition"]) == (*MODELS, "like")
        for subject in SUBJECTS:
            read = elo_from_judgments if kind == "elo" else bt_from_ratings_csv
            a, b = (read(run_root / model / persona, subject) for model in MODELS)
            expected = rho(a, b)
            assert same(row[subject], expected), (persona, kind, subject, row[subject], expected)
            expected_means.setdefault((kind, subject), []).append(expected)
    means = pd.read_csv(out_dir / "views" / "spearman_mean.csv").set_index("ratings")
    for (kind, subject), values in expected_means.items():
        defined = [v for v in values if not math.isnan(v)]
        assert means.loc[kind, f"{subject}_n"] == len(defined)
        assert same(means.loc[kind, subject], statistics.mean(defined) if defined else math.nan)
    return table


def win_rate_by_hand(path: Path) -> float:
    """Both orders of each prompt; a win for the first method when it is chosen in both."""
    verdicts: dict[int, dict[str, str | None]] = {}
    for row in read_jsonl(path):
        verdicts.setdefault(row["prompt_index"], {})[row["order"]] = answer(row["texts"][0])
    wins = kept = 0
    for pair in verdicts.values():
        if (pair.get("fwd"), pair.get("bwd")) == ("1", "2"):
            wins, kept = wins + 1, kept + 1
        elif (pair.get("fwd"), pair.get("bwd")) == ("2", "1"):
            kept += 1
    return wins / kept if kept else math.nan


def check_coherence(out_dir: Path, run_root: Path) -> dict[str, tuple[float, float, int]]:
    """Table 2's cells, recomputed row by row: the mean of the per-persona win rates, and the
    sample SD of those win rates / sqrt(number of personas)."""
    averaged = pd.read_csv(out_dir / "views" / "coherence.csv").set_index("model")
    expected = {}
    for model in MODELS:
        rates = [
            win_rate_by_hand(
                run_root / model / persona / "coherence/judgments/judge/trained_vs_steered.jsonl"
            )
            for persona in PERSONAS
        ]
        defined = [r for r in rates if not math.isnan(r)]
        mean = sum(defined) / len(defined) if defined else math.nan
        se = statistics.stdev(defined) / math.sqrt(len(defined)) if len(defined) > 1 else math.nan
        row = averaged.loc[model]
        assert (row["judge"], row["pair"], row["personas"]) == ("judge", "trained vs steered", len(defined))
        assert same(row["win_rate"], mean) and same(row["se"], se)
        expected[model] = (mean, se, len(defined))
    return expected


def test_results_views_of_a_real_sweep(paper: PaperSweep, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launchers.compare", f"runs=[{paper.run_root}]", f"out_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown in result.stdout
    assert "## eval/judge_check_accuracy" not in markdown  # judge_check=0 in this sweep
    assert "## dpo/final_loss" in markdown  # the per-metric tables are still there, first
    assert markdown.index("## dpo/final_loss") < markdown.index("## Revealed preferences: Elo")
    for heading in ("## Spearman correlation", "## Coherence averaged over personas", "## Robustness"):
        assert heading in markdown
    check_elo(tmp_path, paper.run_root)
    check_spearman(tmp_path, paper.run_root)
    check_coherence(tmp_path, paper.run_root)
    # Figure 5 is launchers.robustness's: linked, with its adversarial F1 per method and model
    section = markdown.split("## Robustness", 1)[1]
    link = re.search(r"\[robustness\.png\]\(([^)]+)\)", section).group(1)
    assert (tmp_path / link).resolve() == (paper.robustness_dir / "robustness.png").resolve()
    summary = read_json(paper.robustness_dir / "summary.json")
    for model in MODELS:
        assert (tmp_path / re.search(rf"{model}: \[f1\.md\]\(([^)]+)\)", section).group(1)).is_file()
        for row in summary[model]["table"]:
            mean, se = row["adversarial_mean"], row["adversarial_se"]
            cell = f"{mean:.3f} ± {'n/a' if se is None else f'{se:.3f}'}"
            assert f"| {model} | {row['method']} | {row['default_f1']:.3f} | {cell} |" in section
    off = compare(config(tmp_path / "off", runs=[str(paper.run_root)], views=False, plots=False))
    assert "## Revealed preferences" not in off.markdown and not (tmp_path / "off" / "views").exists()


def plant_coherence(run_dir: Path, verdicts: list[tuple[str, str]]) -> None:
    """Replace the judge's texts, prompt by prompt (in prompt order), with known (fwd, bwd) answers."""
    path = run_dir / "coherence/judgments/judge/trained_vs_steered.jsonl"
    rows = read_jsonl(path)
    prompts = sorted({row["prompt_index"] for row in rows})
    assert len(prompts) == len(verdicts)
    for row in rows:
        planted = verdicts[prompts.index(row["prompt_index"])][row["order"] == "bwd"]
        row["texts"] = [f"<answer>{planted}</answer>"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_planted_judgments_check_the_math(paper: PaperSweep, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(paper.run_root, root, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt"))
    # coherence, per persona: 2 of 3, 1 of 2 (one INVALID), 3 of 3, and no consistent verdict
    plant_coherence(root / "tiny-s0/loving", [("1", "2"), ("1", "2"), ("2", "1")])
    plant_coherence(root / "tiny-s0/sarcastic", [("1", "2"), ("2", "1"), ("INVALID", "1")])
    plant_coherence(root / "tiny-s1/loving", [("1", "2")] * 3)
    plant_coherence(root / "tiny-s1/sarcastic", [("1", "1")] * 3)
    prefs = "eval/preferences"
    # loving: both models' "after" judgments (and BT ratings) identical, so rho after is exactly 1
    shutil.copy(root / "tiny-s0/loving" / prefs / "judgments_after.jsonl", root / "tiny-s1/loving" / prefs)
    ratings = {m: pd.read_csv(root / m / "loving" / prefs / "ratings.csv") for m in MODELS}
    after = ratings["tiny-s1"]["subject"] == "after"
    ratings["tiny-s1"].loc[after, "bt_rating"] = ratings["tiny-s0"].loc[after, "bt_rating"].to_numpy()
    ratings["tiny-s1"].to_csv(root / "tiny-s1/loving" / prefs / "ratings.csv", index=False)
    # sarcastic on tiny-s1: no valid verdict after training, so every trait is tied
    path = root / "tiny-s1/sarcastic" / prefs / "judgments_after.jsonl"
    rows = [{**row, "texts": ["I cannot tell."]} for row in read_jsonl(path)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    frame = pd.read_csv(root / "tiny-s1/sarcastic" / prefs / "ratings.csv")
    frame.loc[frame["subject"] == "after", "bt_rating"] = 1000.0
    frame.to_csv(root / "tiny-s1/sarcastic" / prefs / "ratings.csv", index=False)

    out = tmp_path / "out"
    result = compare(config(out, runs=[str(root)], plots=False))
    check_elo(out, root)
    table = check_spearman(out, root)
    assert table[table["persona"] == "loving"]["after"].tolist() == [pytest.approx(1.0)] * 2
    sarcastic = table[table["persona"] == "sarcastic"].to_dict("records")
    assert all(math.isnan(row["after"]) for row in sarcastic)
    assert all("tiny-s1 after: constant ratings (all traits tied)" in row["note"] for row in sarcastic)
    means = pd.read_csv(out / "views" / "spearman_mean.csv").set_index("ratings")
    assert means.loc["elo", "after"] == pytest.approx(1.0) and means.loc["elo", "after_n"] == 1
    # the run's row counts the valid verdicts behind the constant ratings, and their SD is 0
    assert re.search(
        r"\| sarcastic +\| tiny-s1 +\| like +\| 16/16 +\| +[\d.]+ +\| 0/16 +\| +0\.0 +\|", result.markdown
    )

    expected = check_coherence(out, root)
    assert expected["tiny-s0"] == pytest.approx(((2 / 3 + 1 / 2) / 2, (2 / 3 - 1 / 2) / 2, 2))
    assert expected["tiny-s1"][0] == 1.0 and math.isnan(expected["tiny-s1"][1])
    assert "| judge   | trained vs steered | 58.3 ± 8.33 (n=2) | 100.0 ± n/a (n=1) |" in result.markdown
    assert "tiny-s1, trained vs steered (judge): no kept comparison for sarcastic" in result.markdown
    by_persona = pd.read_csv(out / "views" / "coherence_by_persona.csv")
    assert by_persona[["model", "persona", "wins", "kept", "judged"]].values.tolist() == [
        ["tiny-s0", "loving", 2, 3, 3],
        ["tiny-s0", "sarcastic", 1, 2, 3],
        ["tiny-s1", "loving", 3, 3, 3],
        ["tiny-s1", "sarcastic", 0, 0, 3],
    ]
