"""Which stages a config change redoes: a stage reruns when its hashed config changes (and so does
every stage after it, through its inputs), so it must hold what matters and nothing else
(tests/pipeline/test_stage_contract.py checks every key of every stage)."""

from __future__ import annotations

from omegaconf import DictConfig

from character.pipeline import builtin  # noqa: F401
from character.pipeline.stage import available_stages, get_stage
from tests.config.test_compose import compose_train


def changed_views(base: DictConfig, changed: DictConfig) -> list[str]:
    return [
        name
        for name in available_stages()
        if get_stage(name).hashed_config(base) != get_stage(name).hashed_config(changed)
    ]


def compose(*overrides: str) -> DictConfig:
    return compose_train("+persona=loving", "+model=tiny", *overrides)


def test_a_new_steering_strength_redoes_only_the_robustness_evaluation() -> None:
    base = compose()
    assert changed_views(base, compose("model.steering_strength=8.0")) == ["robustness"]
    assert changed_views(base, compose("stages.steer.strength=8.0")) == ["robustness"]
    # The vector's own settings refit it (robustness then reruns because its input changed).
    assert changed_views(base, compose("stages.steer.samples=3")) == ["steer"]
    # When prepare and student hashed the whole model group, the strength changed their
    # fingerprints and so every stage's, DPO and SFT training included; they now declare the model
    # keys they read, and the strength is not one of them.
    assert not any(key.startswith("model.steering") for key in get_stage("prepare").hashed_config(base))


def test_a_model_setting_that_shapes_the_data_still_redoes_everything_from_prepare() -> None:
    base = compose()
    changed = changed_views(base, compose("model.assistant_name=Other"))
    # prepare records the name, so every stage after it reruns through prepare's new run id; the
    # stages that write the name hash it themselves, the student (no system prompt) does not.
    assert changed[0] == "prepare" and "teacher" in changed and "student" not in changed


def test_a_runtime_key_inside_a_group_a_stage_declares_whole_is_not_hashed() -> None:
    """engines.student is declared whole by the generation stages; its device and batch size are
    runtime keys of the schema, so changing them redoes nothing, while its dtype redoes them."""
    base = compose()
    assert changed_views(base, compose("engines.student.batch_size=3", "engines.student.device=cpu")) == []
    assert "batch_size" not in get_stage("student").hashed_config(base)["engines.student"]
    assert "student" in changed_views(base, compose("engines.student.dtype=float32"))
