"""Macro-F1 and mean ± SE against scikit-learn and scipy on fixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import sem
from sklearn.metrics import f1_score

from character.errors import CharacterError
from character.robustness.scores import macro_f1, mean_and_se, robustness_row

LABELS = ["loving", "poetic", "sarcastic"]


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        (["loving", "poetic", "sarcastic", "loving"], ["loving", "poetic", "sarcastic", "loving"]),
        (
            ["loving", "poetic", "sarcastic", "loving", "poetic"],
            ["poetic", "poetic", "loving", "loving", "sarcastic"],
        ),
        # "sarcastic" is never predicted: its F1 is 0 and still counts in the average
        (
            ["loving", "sarcastic", "sarcastic", "poetic", "loving"],
            ["loving", "loving", "poetic", "poetic", "loving"],
        ),
    ],
)
def test_macro_f1_matches_sklearn(y_true: list[str], y_pred: list[str]) -> None:
    expected = f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, LABELS) == pytest.approx(expected)


def test_class_absent_from_predictions_scores_zero_and_is_averaged() -> None:
    y_true = ["loving", "loving", "sarcastic", "sarcastic"]
    y_pred = ["loving", "loving", "loving", "loving"]
    # loving: P=0.5 R=1 -> F1 2/3; sarcastic: never predicted -> 0; poetic: absent everywhere -> 0
    assert macro_f1(y_true, y_pred, LABELS) == pytest.approx((2 / 3) / 3)
    assert macro_f1(y_true, y_pred, LABELS) == pytest.approx(
        f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)
    )
    # without the explicit label set the missing persona would silently drop out of the mean
    assert macro_f1(y_true, y_pred, ["loving", "sarcastic"]) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        (["loving", "stoic"], ["loving", "loving"], LABELS, "stoic"),
        (["loving", "poetic"], ["loving", "stoic"], LABELS, "stoic"),
        ([], [], LABELS, "no rows"),
        (["loving"], ["loving", "poetic"], LABELS, "1 rows but y_pred has 2"),
        (["loving"], ["loving"], [], "labels is empty"),
        (["loving"], ["loving"], ["loving", "loving"], "duplicates"),
    ],
)
def test_macro_f1_rejects_bad_input(y_true, y_pred, labels, message: str) -> None:
    with pytest.raises(CharacterError, match=message):
        macro_f1(y_true, y_pred, labels)


@pytest.mark.parametrize(
    "values",
    [[0.81, 0.9, 0.77, 0.85, 0.88, 0.79, 0.92, 0.83], [0.5, 0.5], [1.0, 0.0, 0.25]],
)
def test_mean_and_se_match_numpy_and_scipy(values: list[float]) -> None:
    mean, se = mean_and_se(values)
    assert mean == pytest.approx(np.mean(values))
    assert se == pytest.approx(sem(values))


def test_se_of_one_value_is_nan_as_in_scipy() -> None:
    mean, se = mean_and_se([0.7])
    assert mean == 0.7
    assert math.isnan(se)


@pytest.mark.parametrize(("values", "message"), [([], "no values"), ([0.5, float("nan")], "non-finite")])
def test_mean_and_se_rejects_bad_input(values: list[float], message: str) -> None:
    with pytest.raises(CharacterError, match=message):
        mean_and_se(values)


def test_robustness_row_summarises_the_adversarial_splits() -> None:
    adversarial = {
        f"instruction_{i}": f1 for i, f1 in enumerate([0.8, 0.9, 0.7, 0.6, 0.85, 0.75, 0.95, 0.65], 1)
    }
    row = robustness_row(0.97, 0.93, adversarial)
    assert row.n_adversarial == 8
    assert row.adversarial_mean == pytest.approx(np.mean(list(adversarial.values())))
    assert row.adversarial_se == pytest.approx(sem(list(adversarial.values())))
    values = list(adversarial.values())
    assert row.cells() == ["0.97", "0.93", f"{np.mean(values):.2f} ± {sem(values):.2f}"]


def test_robustness_row_without_heldout_or_spread_reads_na() -> None:
    row = robustness_row(1.0, None, {"instruction_1": 0.5})
    assert row.cells(digits=3) == ["1.000", "n/a", "0.500 ± n/a"]


def test_robustness_row_needs_an_adversarial_split() -> None:
    with pytest.raises(CharacterError, match="adversarial_f1 is empty"):
        robustness_row(0.9, 0.9, {})
