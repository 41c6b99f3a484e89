"""Shared fixtures: an isolated run root, a shared model cache, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# One cache for the whole test session: the tiny model is built once and reused.
CACHE_DIR = Path(os.environ.get("CHARACTER_TEST_CACHE", "/tmp/character-test-cache"))


# Test groups that share a session fixture across folders (the toy W&B sweep).
SHARED_GROUPS = {"tracking": "compare"}
# The groups that take longest, started first when pytest-xdist spreads groups over workers, so
# that no long group starts last and leaves the other worker idle (docs/benchmarks.md, "Test
# suite", has the durations these come from).
LONGEST_GROUPS = (
    "test_smollm2_pipeline",
    "test_pipeline_e2e",
    "slurm",
    "compare",
    "test_ablations_e2e",
    "openrlhf_ext",
    "config",
    "engines",
)


def xdist_group_of(path: Path) -> str:
    """The group of a test file: its folder under tests/, or the file itself at the top."""
    parts = path.relative_to(REPO / "tests").parts
    group = parts[0] if len(parts) > 1 else Path(parts[0]).stem
    return SHARED_GROUPS.get(group, group)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the longest groups first; within a group the order is unchanged."""
    rank = {group: index for index, group in enumerate(LONGEST_GROUPS)}
    items.sort(key=lambda item: rank.get(xdist_group_of(item.path), len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under pytest-xdist (scripts/test.sh runs two workers), send each group to one worker as a
    whole, in collection order: its module and session fixtures (a real sweep, a vLLM server, the
    SLURM cluster on its fixed ports) are expensive or hold fixed resources, so they must run once.
    A scheduler of our own, since ``--dist loadgroup`` marks tests by rewriting a node id field
    that pytest 9.2 no longer reads."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(REPO / nodeid.split("::", 1)[0])

    config.option.loadscopereorder = False  # keep the longest-first order of the collection
    return GroupScheduling(config, log)


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("CHARACTER_CACHE_DIR", str(CACHE_DIR))
    monkeypatch.setenv("CHARACTER_RUN_ROOT", str(tmp_path / "runs"))


@pytest.fixture
def run_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def save_random_lora(
    model_path: str,
    out: Path,
    *,
    rank: int,
    seed: int,
    targets: Sequence[str] = ("q_proj", "v_proj", "down_proj"),
    scale: float = 20.0,
) -> Path:
    """Save a LoRA adapter (alpha 2 x rank) with random, non-zero weights, its B matrices scaled
    by ``scale`` so that it changes what the model writes greedily; returns ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft_model.save_pretrained(out)
    return out


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python -m launchers.train`` with the given arguments from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "launchers.train", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_judge():
    """A real judge for the judging tests: the weakest there is (the tiny model judging, on the
    transformers backend), with constrained answers on."""
    from character.engines.transformers_engine import TransformersEngine
    from character.models.tiny import TinySpec, ensure_tiny_model

    engine = TransformersEngine(str(ensure_tiny_model(TinySpec(), CACHE_DIR)), dtype="float32", batch_size=8)
    yield engine
    engine.close()
