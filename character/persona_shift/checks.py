"""Did the job show what character training claims? Five checks on the persona measures.

Each check is one claim of the method, stated at small scale, with the bar a reader would set
before looking (``stages.persona_shift.min_shift`` and ``min_preference_accuracy``):
- ``shift``: without a system prompt, the final model is in persona far more often than the base
  model: by at least ``min_shift`` (a share), with 95 % intervals that do not overlap;
- ``vs_prompted``: the final model without a system prompt is in persona at least as often as the
  base model told to play the persona (the prompting baseline the paper compares with);
- ``adversarial``: under the paper's "break character" instructions (App. C) the final model stays
  in persona more often than the prompted base model under the same instructions (robustness);
- ``preference_accuracy``: after DPO, the trained model prefers the teacher's answer on at least
  ``min_preference_accuracy`` of the held-out pairs;
- ``quality``: the final model's answers are not measurably more degenerate than the prompted base
  model's (``character.persona_shift.quality_comparison``).

A check that could not be measured (no prompted variant, no adversarial split, no held-out pairs)
is recorded as ``None``, not as held. The verdicts are recorded as metrics (1/0), so that
``launchers.compare`` over a seed sweep reports the share of seeds in which each held.
"""

from __future__ import annotations

from typing import Any

from character.robustness.adversarial import DEFAULT_SPLIT

CHECKS = ("shift", "vs_prompted", "adversarial", "preference_accuracy", "quality")


def persona_checks(
    results: dict[str, Any], min_shift: float, min_preference_accuracy: float
) -> dict[str, Any]:
    """Per check: ``held`` (True, False, or None when not measured) and the numbers it compared."""
    rates = results["persona_rate"]
    base, final = rates["base"][DEFAULT_SPLIT], rates["trained"][DEFAULT_SPLIT]
    shift, apart = final["rate"] - base["rate"], final["low"] > base["high"]
    checks: dict[str, Any] = {
        "shift": {
            "held": shift >= min_shift and apart,
            "shift": shift,
            "min_shift": min_shift,
            "intervals_apart": apart,
        }
    }
    prompted = rates.get("prompted", {})
    checks["vs_prompted"] = _compare(final, prompted.get(DEFAULT_SPLIT), at_least=True)
    checks["adversarial"] = _compare(
        rates["trained"].get("adversarial"), prompted.get("adversarial"), at_least=False
    )
    accuracy = results["preference_accuracy"].get("distilled")
    measured = bool(accuracy and accuracy.get("n"))
    checks["preference_accuracy"] = {
        "held": accuracy["rate"] >= min_preference_accuracy if measured else None,
        "accuracy": accuracy["rate"] if measured else None,
        "min_accuracy": min_preference_accuracy,
    }
    quality = results.get("quality_vs_prompted", {}).get("trained")
    checks["quality"] = {"held": not quality["more_degenerate"] if quality else None}
    return checks


def _compare(final: dict[str, Any] | None, prompted: dict[str, Any] | None, at_least: bool) -> dict[str, Any]:
    """Final's rate against prompted's: ``>=`` (at_least) or ``>``; None when either is missing."""
    if not final or not prompted or not final.get("n") or not prompted.get("n"):
        return {"held": None, "final": None, "prompted": None}
    held = final["rate"] >= prompted["rate"] if at_least else final["rate"] > prompted["rate"]
    return {"held": held, "final": final["rate"], "prompted": prompted["rate"]}


def check_metrics(checks: dict[str, Any]) -> dict[str, float]:
    """``checks/<name>`` as 1.0 / 0.0 for the measured checks, and ``checks/held`` (how many held)."""
    measured = {name: check["held"] for name, check in checks.items() if check["held"] is not None}
    metrics = {f"checks/{name}": float(held) for name, held in measured.items()}
    metrics["checks/held"] = float(sum(measured.values()))
    return metrics
