"""Evaluate any models or adapters (not only runs of this library): revealed preferences.

    python -m launchers.evaluate out_dir=evals/x engines.judge.model=JUDGE \
        'subjects=[{name: before, model: M}, {name: after, model: M, adapter: A}]'

Writes ratings.csv, summary.json and PNG plots into out_dir; reruns resume generation row by row.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from character.config.schema import register_schemas
from character.config.validate import validate_evaluate_config
from character.engines.roles import resolve_role
from character.errors import CharacterError, exit_on_user_error
from character.pipeline.engines import LazyEngine
from character.preferences.comparisons import Subject
from character.preferences.run import run_preference_eval

register_schemas()
log = logging.getLogger("character.evaluate")


def evaluate(cfg: DictConfig) -> dict:
    from transformers import AutoTokenizer

    validate_evaluate_config(cfg)  # the checks of launchers.train, before out_dir is created
    if not cfg.engines.judge.model:
        raise CharacterError(
            "engines.judge.model is not set: name the judge model (a path, hub id or served name)."
        )
    subjects = [Subject(s.name, s.model, s.adapter) for s in cfg.subjects]
    if len({s.name for s in subjects}) != len(subjects):
        raise CharacterError(f"subjects need distinct names; got {[s.name for s in subjects]}.")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system_role = cfg.supports_system_role

    def subject_engine(subject: Subject) -> LazyEngine:
        student = resolve_role(
            "student",
            cfg.engines.student,
            default_model=subject.model,
            default_system_role=system_role,
            model_path=subject.model,
            lora=subject.adapter is not None,
        )
        return LazyEngine(student.build)

    judge_model = cfg.engines.judge.model  # a model of its own: see character.engines.roles
    judge = LazyEngine(
        resolve_role(
            "judge", cfg.engines.judge, default_model=judge_model, default_system_role=system_role
        ).build
    )
    tokenizer = AutoTokenizer.from_pretrained(subjects[0].model)
    return run_preference_eval(
        subjects, subject_engine, judge, cfg.preferences, out_dir, cfg.seed, tokenizer, log
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    summary = exit_on_user_error(lambda: evaluate(cfg))
    log.info("wrote %s to %s", ", ".join(summary["outputs"]), cfg.out_dir)


if __name__ == "__main__":
    main()
