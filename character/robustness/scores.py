"""Scores of the robustness evaluation (paper §3.2, App. C): macro-F1 per split and mean ± SE.

The paper reports one number per (model, method): the persona classifier's F1 averaged over the
eight adversarial splits. We report that mean with its standard error, next to the F1 on the
non-adversarial ("default") split the classifier was trained on and on a held-out slice of it,
which the reference never reported but which tells whether the classifier itself is any good
before its scores are read as robustness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from character.errors import CharacterError


def _check_labels(name: str, values: Sequence[str], known: set[str]) -> None:
    unknown = sorted({value for value in values if value not in known})
    if unknown:
        raise CharacterError(
            f"{name} holds label(s) {unknown} that are not in the label set {sorted(known)}; "
            "every label must be one the classifier was trained on"
        )


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of the per-persona F1 over ``labels`` (scikit-learn's ``average="macro"``).

    The label set is explicit so that a persona the classifier never predicts still counts (with
    F1 0, ``zero_division=0``) instead of silently dropping out of the average and inflating it;
    labels outside the set are an error rather than being ignored, since they mean the evaluation
    and the classifier disagree on what the personas are.
    """
    from sklearn.metrics import f1_score

    if len(y_true) != len(y_pred):
        raise CharacterError(
            f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}; expected one prediction per row"
        )
    if not y_true:
        raise CharacterError("cannot score a split with no rows (y_true is empty)")
    if not labels:
        raise CharacterError("labels is empty; expected the classifier's persona labels")
    if len(set(labels)) != len(labels):
        raise CharacterError(f"labels {list(labels)} holds duplicates; expected each persona once")
    known = set(labels)
    _check_labels("y_true", y_true, known)
    _check_labels("y_pred", y_pred, known)
    return float(f1_score(list(y_true), list(y_pred), labels=list(labels), average="macro", zero_division=0))


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample SD with ddof=1 over sqrt(n), as ``scipy.stats.sem``).

    The SE of a single value is ``nan``, as in scipy: one split measures no spread, and 0.0 would
    claim a certainty the data do not give. Tables render it as ``n/a``.
    """
    if len(values) == 0:
        raise CharacterError("mean_and_se got no values; expected at least one score")
    floats = [float(value) for value in values]
    bad = [value for value in floats if not math.isfinite(value)]
    if bad:
        raise CharacterError(f"mean_and_se got non-finite value(s) {bad}; expected finite scores")
    mean = math.fsum(floats) / len(floats)
    if len(floats) == 1:
        return mean, math.nan  # scipy gives the same, with a warning we need not emit
    from scipy.stats import sem

    return mean, float(sem(floats, ddof=1))


@dataclass(frozen=True)
class RobustnessRow:
    """One table row: default-split F1, held-out F1 and adversarial mean ± SE over ``n_adversarial``."""

    default_f1: float
    heldout_f1: float | None
    adversarial_mean: float
    adversarial_se: float
    n_adversarial: int

    def cells(self, digits: int = 2) -> list[str]:
        """The row as printable cells; a missing held-out F1 or an undefined SE reads ``n/a``."""

        def fmt(value: float | None) -> str:
            return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"

        return [
            fmt(self.default_f1),
            fmt(self.heldout_f1),
            f"{fmt(self.adversarial_mean)} ± {fmt(self.adversarial_se)}",
        ]


def robustness_row(
    default_f1: float, heldout_f1: float | None, adversarial_f1: Mapping[str, float]
) -> RobustnessRow:
    """Collapse per-split F1s into the row "default F1, held-out F1, mean ± SE over the adversarial splits".

    ``adversarial_f1`` maps each adversarial split (one per instruction of App. C) to its F1; its
    size is kept in the row so that a run with fewer instructions than the paper's eight is visible.
    ``heldout_f1`` is ``None`` when no held-out slice was kept (``heldout_fraction=0``).
    """
    if not adversarial_f1:
        raise CharacterError("adversarial_f1 is empty; expected the F1 of at least one adversarial split")
    mean, se = mean_and_se(list(adversarial_f1.values()))
    return RobustnessRow(
        default_f1=float(default_f1),
        heldout_f1=None if heldout_f1 is None else float(heldout_f1),
        adversarial_mean=mean,
        adversarial_se=se,
        n_adversarial=len(adversarial_f1),
    )
