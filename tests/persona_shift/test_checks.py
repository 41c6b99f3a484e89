"""The five checks of a job's persona measures: each bar decided on hand-built results, the
unmeasured ones recorded as None (not as held), the metrics, and the report's line."""

from __future__ import annotations

import copy

import pytest

from character.persona_shift.checks import CHECKS, check_metrics, persona_checks
from character.report.markdown import checks_headline


def rate(value: float, low: float, high: float, n: int = 24) -> dict:
    return {"rate": value, "low": low, "high": high, "n": n}


RESULTS = {
    "persona_rate": {
        "base": {"default": rate(0.125, 0.04, 0.31)},
        "prompted": {"default": rate(0.833, 0.64, 0.94), "adversarial": rate(0.74, 0.64, 0.82, 96)},
        "trained": {"default": rate(0.875, 0.69, 0.96), "adversarial": rate(0.79, 0.70, 0.86, 96)},
    },
    "preference_accuracy": {"distilled": rate(0.93, 0.81, 0.98, 43), "trained": rate(0.95, 0.85, 0.99, 43)},
    "quality_vs_prompted": {"trained": {"more_degenerate": False}},
}


def test_all_five_hold_on_a_job_that_meets_every_bar() -> None:
    checks = persona_checks(RESULTS, min_shift=0.5, min_preference_accuracy=0.75)
    assert list(checks) == list(CHECKS)
    assert {name: check["held"] for name, check in checks.items()} == dict.fromkeys(CHECKS, True)
    assert checks["shift"]["shift"] == pytest.approx(0.75)
    assert check_metrics(checks) == {**{f"checks/{name}": 1.0 for name in CHECKS}, "checks/held": 5.0}


@pytest.mark.parametrize(
    ("change", "missed"),
    [
        # 0.875 - 0.40 = 0.475 < 0.5, though the intervals are apart
        (lambda r: r["persona_rate"]["base"]["default"].update(rate=0.40, high=0.60), "shift"),
        # 75 points up, but the intervals touch
        (lambda r: r["persona_rate"]["base"]["default"].update(high=0.69), "shift"),
        # one prompt short of the prompted model
        (lambda r: r["persona_rate"]["prompted"]["default"].update(rate=0.9167), "vs_prompted"),
        # equal under the adversarial instructions is not "more in persona"
        (lambda r: r["persona_rate"]["prompted"]["adversarial"].update(rate=0.79), "adversarial"),
        (lambda r: r["preference_accuracy"]["distilled"].update(rate=0.74), "preference_accuracy"),
        (lambda r: r["quality_vs_prompted"]["trained"].update(more_degenerate=True), "quality"),
    ],
)
def test_each_bar_misses_on_its_own(change, missed: str) -> None:
    results = copy.deepcopy(RESULTS)
    change(results)
    checks = persona_checks(results, min_shift=0.5, min_preference_accuracy=0.75)
    assert [name for name, check in checks.items() if not check["held"]] == [missed]
    metrics = check_metrics(checks)
    assert metrics[f"checks/{missed}"] == 0.0
    assert metrics["checks/held"] == 4.0


def test_equal_to_the_prompted_model_without_a_system_prompt_holds() -> None:
    results = copy.deepcopy(RESULTS)
    results["persona_rate"]["prompted"]["default"]["rate"] = 0.875
    assert persona_checks(results, 0.5, 0.75)["vs_prompted"]["held"] is True


def test_the_bars_come_from_the_arguments() -> None:
    checks = persona_checks(RESULTS, min_shift=0.8, min_preference_accuracy=0.95)
    assert checks["shift"]["held"] is False
    assert checks["preference_accuracy"]["held"] is False


def test_what_was_not_measured_is_none_and_left_out_of_the_count() -> None:
    results = copy.deepcopy(RESULTS)
    del results["persona_rate"]["prompted"]
    del results["persona_rate"]["trained"]["adversarial"]
    results["preference_accuracy"]["distilled"] = rate(float("nan"), float("nan"), float("nan"), 0)
    results["quality_vs_prompted"] = {}
    checks = persona_checks(results, 0.5, 0.75)
    assert {name: check["held"] for name, check in checks.items()} == {
        "shift": True,
        "vs_prompted": None,
        "adversarial": None,
        "preference_accuracy": None,
        "quality": None,
    }
    assert check_metrics(checks) == {"checks/shift": 1.0, "checks/held": 1.0}
    line = checks_headline(checks)[0]
    assert line.startswith("- **Checks**: 1 of 1 held (final - base >= 50 points with intervals apart)")
    assert "not measured: final >= prompted; adversarial: final > prompted;" in line


def test_the_report_line_names_what_held_and_what_missed() -> None:
    results = copy.deepcopy(RESULTS)
    results["persona_rate"]["prompted"]["default"]["rate"] = 0.9167
    (line,) = checks_headline(persona_checks(results, 0.5, 0.75))
    assert line.startswith("- **Checks**: 4 of 5 held (")
    assert "preference accuracy after DPO >= 0.75" in line
    assert line.endswith("; missed: final >= prompted.")
    assert checks_headline(None) == []
