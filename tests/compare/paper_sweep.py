"""A real 2-model x 2-persona sweep of the tiny model through every stage the results views read.

The two "models" are the embedded tiny model built from two seeds (``model.tiny.seed=0,1``, named
``tiny-s0`` and ``tiny-s1``): two different weight sets, each trained for both personas. Counts are
cut below ``scale=ci`` (one optimiser step, 8-token introspection, transformers engines, two
robustness methods) since only the files the views read matter here; the sweep runs once per session,
then ``launchers.robustness`` scores it with the locally built classifier.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import CACHE_DIR, REPO, run_cli

MODELS = ("tiny-s0", "tiny-s1")
PERSONAS = ("loving", "sarcastic")
STAGES = "prepare,prompts,teacher,student,dpo_data,dpo,reflection,interaction,sft_data,sft,merge,eval,steer,robustness,coherence"
OVERRIDES = (
    "+model=tiny",
    "scale=ci",
    "model.tiny.seed=0,1",
    "model.name=tiny-s${model.tiny.seed}",
    f"stage.run=[{STAGES}]",
    *(f"engine@engines.{role}=transformers" for role in ("generator", "teacher", "student", "judge")),
    "stages.dpo.max_steps=1",
    "stages.sft.max_steps=1",
    *(f"stages.{stage}.sampling.max_tokens=8" for stage in ("reflection", "interaction")),
    "stages.eval.preferences.judge_check=0",
    "stages.robustness.methods=[steered,trained]",
    "stages.robustness.prefill_attack=false",
    "stages.coherence.pairs=[trained:steered]",
    "stages.coherence.judge_check=0",
)


@dataclass(frozen=True)
class PaperSweep:
    run_root: Path

    def run_dir(self, model: str, persona: str) -> Path:
        return self.run_root / model / persona

    @property
    def robustness_dir(self) -> Path:
        return self.run_root / ".robustness"


@functools.cache
def paper_sweep(base: Path) -> PaperSweep:
    """Run the sweep and the robustness report into ``base`` (once per path and session)."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "CHARACTER_CACHE_DIR": str(CACHE_DIR),
        "CHARACTER_RUN_ROOT": str(base / "runs"),
    }
    result = run_cli("+persona=" + ",".join(PERSONAS), *OVERRIDES, "-m", env=env, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "launchers.robustness", "classifier=tiny"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    return PaperSweep(run_root=base / "runs")
