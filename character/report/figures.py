"""The report's headline figure: persona rate per model variant and held-out preference accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.reporting import pyplot, save_figure


def _yerr(entries: list[dict[str, float]]) -> list[list[float]]:
    return [[e["rate"] - e["low"] for e in entries], [e["high"] - e["rate"] for e in entries]]


def persona_shift_figure(path: Path, results: dict[str, Any], title: str) -> None:
    """Left: persona rate on plain and adversarial held-out prompts per variant (95 % intervals).
    Right: held-out preference accuracy after DPO and after SFT (95 % intervals)."""
    plt = pyplot()
    variants = list(results["variants"])
    labels = [results["variants"][v].replace(" (", "\n(").replace(" + ", "\n+ ") for v in variants]
    rates = results["persona_rate"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.38
    positions = range(len(variants))
    plain = [rates[v]["default"] for v in variants]
    left.bar(
        [p - width / 2 for p in positions],
        [e["rate"] for e in plain],
        width,
        yerr=_yerr(plain),
        capsize=3,
        label="held-out prompts",
        color="#4C72B0",
    )
    adversarial = [rates[v].get("adversarial") for v in variants]
    if any(adversarial):
        shown = [e or {"rate": 0.0, "low": 0.0, "high": 0.0} for e in adversarial]
        left.bar(
            [p + width / 2 for p in positions],
            [e["rate"] for e in shown],
            width,
            yerr=_yerr(shown),
            capsize=3,
            label="+ App. C adversarial instruction",
            color="#DD8452",
        )
    left.set_xticks(list(positions), labels, fontsize=8)
    left.set_ylim(0, 1.05)
    left.set_ylabel("share of answers judged in persona")
    left.set_title("Persona rate, no system prompt (95 % CI)", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    accuracy = results["preference_accuracy"]
    names = [n for n in ("distilled", "trained") if accuracy.get(n, {}).get("n")]
    entries = [accuracy[n] for n in names]
    right.bar(
        range(len(names)),
        [e["rate"] for e in entries],
        0.6,
        yerr=_yerr(entries) if entries else None,
        capsize=3,
        color="#55A868",
    )
    right.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    right.set_xticks(range(len(names)), ["after DPO" if n == "distilled" else "final" for n in names])
    right.set_ylim(0, 1.05)
    right.set_title("Held-out preference accuracy", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
