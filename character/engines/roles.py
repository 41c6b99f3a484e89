"""Which model a role's engine loads, and whether that model takes a system message.

Decided here for every caller: the pipeline's stages (``character.pipeline.engines``, also for
the coherence stage's extra judges) and ``launchers.evaluate``. A role's config is
``engines.<role>`` (generator, teacher, student, judge) or one of ``stages.coherence.judges``.

- **Model.** The model the caller names (``model_path``: the DPO-merged model for introspection,
  a robustness method's weights, a subject of ``launchers.evaluate``), else the *default model*
  (the model being trained). A role with a model of its own (``engines.<role>.model``: a hosted
  teacher or judge) loads that one instead (``factory.build_engine``).
- **System role** (false folds the system prompt into the first user turn, docs/engines.md):
  ``engines.<role>.supports_system_role`` when set; else the default model's own setting when
  the role runs the default model or the model the caller names (the trained model's family);
  else true: another model, with a chat template of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from character.engines.base import Engine
from character.engines.factory import build_engine


@dataclass(frozen=True)
class RoleEngine:
    """What one role's engine is built from; ``build`` creates it."""

    role: str
    config: DictConfig
    model_path: str  # the model to load unless the role's config names its own
    supports_system_role: bool
    lora: bool = False  # requests will name LoRA adapters (factory.build_engine)

    def build(self) -> Engine:
        return build_engine(self.config, self.model_path, self.supports_system_role, self.lora)


def resolve_role(
    role: str,
    engine_cfg: DictConfig,
    *,
    default_model: str,
    default_system_role: bool,
    model_path: str | None = None,
    lora: bool = False,
) -> RoleEngine:
    """The engine of ``role`` (config ``engine_cfg``), by the rules of this module's docstring.

    ``default_model`` and ``default_system_role`` describe the model the caller is about (the
    trained model: ``model.supports_system_role``); ``model_path`` names another model to load.
    """
    if engine_cfg.supports_system_role is not None:
        system_role = engine_cfg.supports_system_role
    elif engine_cfg.model is None or model_path is not None:
        system_role = default_system_role
    else:
        system_role = True  # another model (a hosted teacher or judge) with its own template
    return RoleEngine(role, engine_cfg, model_path or default_model, system_role, lora)
