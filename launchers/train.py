"""Run the character-training pipeline for one (model, persona), or a sweep with ``-m``.

python -m launchers.train +persona=loving +model=tiny
python -m launchers.train +persona=loving,sarcastic +model=tiny,qwen2.5-7b -m
python -m launchers.train +persona=loving +model=tiny +stage=prepare
python -m launchers.train +persona=loving +model=tiny stages.dpo.beta=0.2 dry_run=true  # what would rerun
"""

from __future__ import annotations

import importlib
import logging

import hydra
from omegaconf import DictConfig

from character.config.schema import register_schemas
from character.config.validate import validate_train_config
from character.errors import CharacterError, exit_on_user_error
from character.models.resolve import resolve_model_path
from character.pipeline import console
from character.pipeline.console import console_session
from character.pipeline.preemption import watch_requeue_signal
from character.pipeline.runner import PipelineRunner, describe_plan

register_schemas()
log = logging.getLogger("character.train")


def _load_plugins(cfg: DictConfig) -> None:
    for module in cfg.plugins:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise CharacterError(
                f"plugins lists module {module!r}, which cannot be imported ({error}); expected an "
                "importable module that registers stages with @register_stage."
            ) from error


def train(cfg: DictConfig) -> dict:
    """Validate, then run the selected stages; nothing is written before validation passes."""
    # Imported here, not at module level: a submitit job runs a pickled copy of this function
    # without executing this module, and the import is what registers the built-in stages.
    from character.pipeline import builtin  # noqa: F401

    watch_requeue_signal()  # under submitit: a requeued attempt stops even if its exit was swallowed
    validate_train_config(cfg)
    _load_plugins(cfg)
    runner = PipelineRunner(cfg)
    if cfg.dry_run:  # the runner's decisions, none acted on (docs/pipeline.md, "Dry run")
        plan = runner.plan()
        console.job_plan(cfg.model.name, cfg.persona.name, runner.run_dir, describe_plan(plan))
        return {"stages": {p.name: {"status": p.action, "reason": p.reason} for p in plan}}
    resolve_model_path(cfg.model, cfg.cache_dir)
    return runner.run()


def train_with_console(cfg: DictConfig) -> dict:
    """``train`` with the console of ``verbose`` (character/pipeline/console.py). The session ends
    before ``exit_on_user_error`` or Hydra print an error, so the error reaches the terminal."""
    with console_session(verbose=bool(cfg.verbose)):
        summary = train(cfg)
        log.info(
            "finished %s/%s: %s",
            cfg.model.name,
            cfg.persona.name,
            {name: s["status"] for name, s in summary["stages"].items()},
        )
        return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(lambda: train_with_console(cfg))


if __name__ == "__main__":
    main()
