"""Which stages a config change redoes: a stage reruns when its config view changes (and so does
every stage after it, through its inputs), so the views must hold what matters and nothing else."""

from __future__ import annotations

from typing import ClassVar

import pytest
from omegaconf import DictConfig

from character.pipeline import builtin  # noqa: F401
from character.pipeline.stage import Stage, StageContext, StageResult, available_stages, get_stage
from tests.config.test_compose import compose_train


def changed_views(base: DictConfig, changed: DictConfig) -> list[str]:
    return [
        name
        for name in available_stages()
        if get_stage(name).config_view(base) != get_stage(name).config_view(changed)
    ]


def compose(*overrides: str) -> DictConfig:
    return compose_train("+persona=loving", "+model=tiny", *overrides)


def test_a_new_steering_strength_redoes_only_the_robustness_evaluation() -> None:
    base = compose()
    assert changed_views(base, compose("model.steering_strength=8.0")) == ["robustness"]
    assert changed_views(base, compose("stages.steer.strength=8.0")) == ["robustness"]
    # The vector's own settings refit it (robustness then reruns because its input changed).
    assert changed_views(base, compose("stages.steer.samples=3")) == ["steer"]
    # Before config_excludes, prepare and student hashed the whole model config: the strength
    # changed their fingerprints and so every stage's, DPO and SFT training included.
    assert "steering_strength" not in get_stage("prepare").config_view(base)["model"]


def test_a_model_setting_that_shapes_the_data_still_redoes_everything_from_prepare() -> None:
    base = compose()
    changed = changed_views(base, compose("model.assistant_name=Other"))
    assert changed[0] == "prepare" and "student" in changed


def test_an_exclude_outside_the_stage_view_is_an_error_naming_it() -> None:
    class Misconfigured(Stage):
        name = "misconfigured"
        config_keys: ClassVar[tuple[str, ...]] = ("stages.dpo",)
        config_excludes: ClassVar[tuple[str, ...]] = ("model.steering_strength",)

        def run(self, ctx: StageContext) -> StageResult:
            raise AssertionError("not run")

    with pytest.raises(ValueError, match=r"'model.steering_strength', which is inside none of"):
        Misconfigured().config_view(compose())
