"""Persona rates against the prompted base model's: the paired difference over prompts, with the
adversarial answers of one prompt counted as one unit, and the report's reading of its interval."""

from __future__ import annotations

import numpy as np
import pytest

from character.persona_shift.rate_comparison import rate_differences
from character.report.markdown import rate_difference


def verdicts(method: str, split: str, in_persona: list[int]) -> list[dict]:
    return [
        {"method": method, "split": split, "prompt_index": i, "in_persona": bool(v)}
        for i, v in enumerate(in_persona)
    ]


def test_the_difference_is_paired_by_prompt_and_pools_the_adversarial_splits() -> None:
    rows = (
        verdicts("prompted", "default", [1, 1, 1, 0, 1, 1, 0, 1])
        + verdicts("trained", "default", [1, 0, 1, 1, 1, 1, 1, 1])
        + verdicts("prompted", "adv1", [0, 0, 1, 0, 1, 0, 0, 0])
        + verdicts("prompted", "adv5", [1, 0, 0, 0, 1, 0, 0, 1])
        + verdicts("trained", "adv1", [1, 1, 1, 0, 1, 1, 0, 1])
        + verdicts("trained", "adv5", [1, 1, 0, 1, 1, 1, 1, 1])
    )
    result = rate_differences(rows, seed=0)
    assert set(result) == {"trained"}
    plain, adversarial = result["trained"]["default"], result["trained"]["adversarial"]
    assert plain["value"] == pytest.approx(7 / 8 - 6 / 8)
    assert plain["n"] == 8
    assert plain["low"] <= plain["value"] <= plain["high"]
    assert adversarial["value"] == pytest.approx(13 / 16 - 5 / 16)  # the pooled rates
    assert adversarial["n"] == 8  # prompts, each with its two instructions
    assert adversarial["low"] > 0  # 50 points up, as planted


def test_no_prompted_base_model_gives_no_comparison() -> None:
    assert rate_differences(verdicts("trained", "default", [1, 0, 1]), seed=0) == {}


def test_the_interval_covers_a_planted_difference_about_95_percent_of_the_time() -> None:
    # trained in persona with p=0.8, prompted with p=0.6, independently per prompt: difference 0.2
    rng = np.random.default_rng(7)
    covered = 0
    trials = 200
    for trial in range(trials):
        prompted = (rng.random(40) < 0.6).astype(int).tolist()
        trained = (rng.random(40) < 0.8).astype(int).tolist()
        rows = verdicts("prompted", "default", prompted) + verdicts("trained", "default", trained)
        diff = rate_differences(rows, seed=trial)["trained"]["default"]
        covered += diff["low"] <= 0.2 <= diff["high"]
    assert 0.88 <= covered / trials <= 0.99


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            {"value": -0.125, "low": -0.333, "high": 0.083, "n": 24},
            "-12.5 points [-33.3, +8.3], paired by prompt: not measurably different",
        ),
        (
            {"value": 0.2, "low": 0.05, "high": 0.35, "n": 24},
            "+20.0 points [+5.0, +35.0], paired by prompt: measurably above",
        ),
        ({"value": -0.2, "low": -0.35, "high": -0.05, "n": 24}, "measurably below"),
    ],
)
def test_the_report_reads_the_interval(entry: dict, says: str) -> None:
    assert says in rate_difference(entry)
    assert (
        rate_difference(None) == ""
        and rate_difference({"value": 0.0, "low": float("nan"), "high": 0.0, "n": 1}) == ""
    )
