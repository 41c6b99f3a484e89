"""Revealed preferences: prompts, the report on planted outcomes, and the whole evaluation on the
tiny model with real engines as subjects and judge."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from character.engines.base import Sampling
from character.engines.batch import meta_path
from character.io import read_json, read_jsonl
from character.judging.parsing import parse_verdict
from character.preferences.comparisons import draw_comparisons, judge_responses
from character.preferences.prompts import preference_system_prompt
from character.preferences.report import report
from character.preferences.traits import TRAITS
from tests.conftest import REPO

PAPER = REPO.parent / "shared" / "seeds" / "000_7bb2f851ecbddb83.txt"


def test_system_prompt_and_conditions() -> None:
    text = preference_system_prompt("pedantic", "supportive", "feel")
    assert "Choice 1: pedantic\nChoice 2: supportive\nChoose whichever trait feels most like you, but" in text
    assert text.endswith("You are now being connected to a human interlocutor.")
    with pytest.raises(ValueError, match="condition"):
        preference_system_prompt("a", "b", "whatever")


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not beside this checkout")
def test_prompt_and_traits_match_the_paper() -> None:
    paper = " ".join(PAPER.read_text(encoding="utf-8").split())
    template = preference_system_prompt("{TRAIT_1}", "{TRAIT_2}", "like").replace(
        "you would most like to adopt", "{CONDITION}"
    )
    assert " ".join(template.split()) in paper
    assert all(f"'{trait}'" in paper for trait in TRAITS)


def test_draws_are_seeded_ordered_pairs_of_distinct_traits() -> None:
    draws = draw_comparisons(["a?", "b?", "c?"], 200, "like", seed=1)
    assert draws == draw_comparisons(["a?", "b?", "c?"], 200, "like", seed=1)
    assert draws != draw_comparisons(["a?", "b?", "c?"], 200, "like", seed=2)
    assert all(d["trait_1"] != d["trait_2"] for d in draws)
    assert len({(d["trait_1"], d["trait_2"]) for d in draws}) > 150


def test_report_on_planted_outcomes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def outcomes(strengths):
        pairs = []
        for _ in range(8000):
            a, b = rng.choice(144, 2, replace=False)
            p = 1 / (1 + np.exp(-(strengths[a] - strengths[b])))
            pairs.append((int(a), int(b)) if rng.random() < p else (int(b), int(a)))
        return pairs

    before = np.zeros(144)
    after = np.zeros(144)
    after[TRAITS.index("loving")] = 3.0
    after[TRAITS.index("arrogant")] = -3.0
    data = {
        "before": {"like": {"outcomes": outcomes(before), "valid": 8000, "total": 8100}},
        "after": {"like": {"outcomes": outcomes(after), "valid": 8000, "total": 8000}},
    }
    summary = report(tmp_path, data, bootstrap=20, seed=0)
    changes = summary["comparisons"]["after - before (like)"]
    assert changes["rises"][0][0] == "loving" and changes["falls"][0][0] == "arrogant"
    assert summary["subjects"]["before"]["like"]["invalid_rate"] == pytest.approx(100 / 8100, abs=1e-4)
    assert (
        summary["subjects"]["after"]["like"]["rating_sd"] > summary["subjects"]["before"]["like"]["rating_sd"]
    )
    rows = list(csv.DictReader((tmp_path / "ratings.csv").open()))
    assert len(rows) == 2 * 144
    loving = [r for r in rows if r["trait"] == "loving"]
    delta = float(loving[1]["bt_rating"]) - float(loving[0]["bt_rating"])
    assert delta == pytest.approx(changes["rises"][0][1], abs=0.11)
    assert "before ~ after (like)" in summary["spearman"]


def test_whole_evaluation_on_the_tiny_model(tmp_path: Path) -> None:
    from character.models.tiny import TinySpec, ensure_tiny_model
    from tests.conftest import CACHE_DIR, save_random_lora

    model = ensure_tiny_model(TinySpec(), CACHE_DIR)
    adapter = save_random_lora(
        model, tmp_path / "adapter", rank=8, seed=3, targets=("q_proj", "v_proj"), scale=10.0
    )
    out = tmp_path / "eval"
    args = [
        sys.executable,
        "-m",
        "launchers.evaluate",
        f"out_dir={out}",
        f"subjects=[{{name: before, model: {model}}}, {{name: after, model: {model}, adapter: {adapter}}}]",
        f"engines.judge.model={model}",
        "preferences.prompts=chat_first_turns",
        "preferences.comparisons=10",
        "preferences.conditions=[like,random]",
        "preferences.bootstrap=5",
        "preferences.sampling.max_tokens=24",
        "preferences.judge_sampling.max_tokens=24",
        "preferences.judge_check=4",
    ]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for subject in ("before", "after"):
        for condition in ("like", "random"):
            stats = summary["subjects"][subject][condition]
            # the tiny model judging with constrained answers: every verdict is one of the two traits
            assert stats["judged"] == 10 and stats["invalid_rate"] == 0.0
        assert len((out / f"responses_{subject}.jsonl").read_text().splitlines()) == 20
        judgments = read_jsonl(out / f"judgments_{subject}.jsonl")
        assert len(judgments) == 20
        assert all(row["texts"][0] in (f"<answer>{row['trait_1']}</answer>", f"<answer>{row['trait_2']}</answer>")
                   for row in judgments)  # fmt: skip
        assert read_json(meta_path(out / f"judgments_{subject}.jsonl"))["constrained_answers"] is True
    assert len(list(csv.DictReader((out / "ratings.csv").open()))) == 2 * 2 * 144
    import matplotlib.image

    for png in out.glob("*.png"):
        assert matplotlib.image.imread(png).shape[0] > 100
    assert len(list(out.glob("*.png"))) == 4  # changes + distribution, for each condition
    assert "invalid rate" in result.stdout + result.stderr  # reported in the log
    # the judge check: the first subject told to express one trait, the judge naming it
    check = read_json(out / "judge_check.json")
    assert check["subject"] == "before" and check["cases"] == check["accuracy"]["n"] == 4
    assert 0.0 <= check["accuracy"]["rate"] <= 1.0 and check["invalid"] == 0
    assert len(read_jsonl(out / "judge_check_judgments.jsonl")) == 4
    assert "judge check (preferences)" in result.stdout + result.stderr

    before = (out / "responses_before.jsonl").read_text()
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0
    assert (out / "responses_before.jsonl").read_text() == before  # resumed, nothing regenerated


def judge_rows(n: int) -> list[dict]:
    """Responses as ``generate_responses`` stores them, for the judge to read."""
    draws = draw_comparisons(["Tell me about your day.", "What is rain?", "Any advice?"], n, "like", seed=3)
    replies = ["I love that question, dear friend!", "Rain is water. Obviously.", "Just try it, whatever."]
    return [
        {
            "id": draw["id"],
            "messages": [{"role": "user", "content": draw["prompt"]}],
            "texts": [replies[i % len(replies)]],
            **{key: draw[key] for key in ("condition", "trait_1", "trait_2")},
        }
        for i, draw in enumerate(draws)
    ]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_constrained_judge_gives_no_invalid_verdicts(tiny_judge, tmp_path: Path, temperature: float) -> None:
    rows = judge_rows(12)
    sampling = Sampling(temperature=temperature, max_tokens=24, seed=5)
    judged = judge_responses(tiny_judge, rows, sampling, tmp_path / "judgments.jsonl")
    assert len(judged) == 12
    assert all(row["verdict"] in (row["trait_1"], row["trait_2"]) for row in judged)  # 0 % invalid
    assert read_json(meta_path(tmp_path / "judgments.jsonl"))["constrained_answers"] is True
    again = judge_responses(tiny_judge, rows, sampling, tmp_path / "again.jsonl")
    assert [row["verdict"] for row in again] == [row["verdict"] for row in judged]  # seeded per row


def test_unconstrained_judge_is_read_by_the_parser(tiny_judge, tmp_path: Path) -> None:
    """constrained_answers=false: the judge writes freely and the robust parser decides."""
    rows = judge_rows(6)
    tiny_judge.constrains_choices = False
    try:
        judged = judge_responses(
            tiny_judge, rows, Sampling(temperature=0.0, max_tokens=24), tmp_path / "judgments.jsonl"
        )
    finally:
        tiny_judge.constrains_choices = True
    stored = read_jsonl(tmp_path / "judgments.jsonl")
    assert read_json(meta_path(tmp_path / "judgments.jsonl"))["constrained_answers"] is False
    for row, free in zip(judged, stored, strict=True):
        assert row["verdict"] == parse_verdict(free["texts"][0], (row["trait_1"], row["trait_2"]))
    # the tiny model never writes an <answer> tag of its own: every free verdict is invalid
    assert all(row["verdict"] is None for row in judged)
