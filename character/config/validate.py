"""Checks on a composed config that Hydra's type validation cannot express.

They run before anything is written, so bad input leaves no trace under the run directory. Each
failure is a ``CharacterError`` naming the config file, the key, the value, and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from character.config.checks import Problem, field_problems
from character.config.locations import (
    HUB_ID_HINT,
    is_hub_id,
    model_location_problem,
    url_problem,
    writable_folder_problem,
)
from character.config.provenance import option_source, value_source
from character.config.schema import PIPELINE_ORDER, EvaluateConfig, RobustnessReportConfig, TrainConfig
from character.errors import CharacterError
from character.pipeline.run_dirs import job_run_dir, main_run_dir

LOCAL_BACKENDS = ("vllm", "transformers")


def group_options(group: str) -> list[str]:
    """Option names of a config group on Hydra's search path (user folders included)."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return []
    return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


def _require_choice(cfg: DictConfig, group: str) -> None:
    if OmegaConf.is_missing(cfg, group):
        options = ", ".join(group_options(group)) or "(none found)"
        raise CharacterError(
            f"no {group} chosen: add +{group}=<name> to the command, e.g. "
            f"`python -m launchers.train +persona=loving +model=tiny`; available {group} "
            f"options: {options}."
        )


def _persona_errors(persona: DictConfig) -> list[str]:
    errors: list[str] = []
    for key in ("name", "display_name", "description", "traits"):
        if OmegaConf.is_missing(persona, key):
            what = (
                "a list of first-person trait assertions (the constitution)"
                if key == "traits"
                else "a string"
            )
            errors.append(f"key '{key}' is missing (expected {what})")
    if errors:
        return errors
    for key in ("name", "display_name", "description"):
        if not str(persona[key]).strip():
            errors.append(
                f"key '{key}' is empty: persona.{key}={persona[key]!r} (expected a non-empty string)"
            )
    if len(persona.traits) == 0:
        errors.append("key 'traits' is an empty list (expected at least one trait assertion)")
    for index, trait in enumerate(persona.traits):
        if OmegaConf.is_missing(trait, "trait") or not str(trait.trait).strip():
            errors.append(f"traits[{index}].trait is missing or empty (expected the assertion text)")
        if OmegaConf.is_missing(trait, "questions") or len(trait.questions) == 0:
            errors.append(
                f"traits[{index}].questions is missing or empty (expected hand-written user "
                "questions that give the assistant a chance to show the trait; the paper uses 5)"
            )
        elif any(not str(q).strip() for q in trait.questions):
            errors.append(f"traits[{index}].questions holds an empty question")
    return errors


def validate_train_config(cfg: DictConfig) -> None:
    """Everything a job checks before it creates its run directory."""
    _require_choice(cfg, "model")
    _require_choice(cfg, "persona")
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("persona", cfg.persona.get("name", "?"))
    except ValueError:
        choice = cfg.persona.get("name", "?")
    source = option_source("persona", str(choice))
    errors = _persona_errors(cfg.persona)
    if errors:
        raise CharacterError(f"persona file {source} is not a valid persona: " + "; ".join(errors) + ".")
    if cfg.persona.gated and not cfg.acknowledge_gated:
        raise CharacterError(
            f"persona {cfg.persona.name!r} ({source}) is gated: it trains a deliberately harmful "
            "assistant, meant only for red-teaming and safety research. To run it anyway, add "
            "acknowledge_gated=true to the command."
        )
    teacher = cfg.stages.teacher
    if teacher.reasoning and not teacher.think_prefill:
        raise CharacterError(
            "stages.teacher.reasoning=true with stages.teacher.think_prefill=false: a reasoning "
            "teacher's answer is the text after the </think> that closes the prefilled block; expected "
            "think_prefill=true, or reasoning=false for a teacher without reasoning."
        )
    problems = value_problems(cfg)
    if problems:
        raise CharacterError(describe_problems(problems))


def value_problems(cfg: DictConfig) -> list[Problem]:
    """Every value outside its schema declaration, every engine that cannot be reached, and a
    run root that cannot be written: all of them, so that one run of the command lists them."""
    problems = field_problems(TrainConfig, cfg)
    if cfg.model.get("tiny") is None and cfg.model.get("gguf") is None and not cfg.model.path:
        if cfg.model.hub_id and not is_hub_id(str(cfg.model.hub_id)):
            problems.append(Problem("model.hub_id", cfg.model.hub_id, HUB_ID_HINT))
    for role in ("generator", "teacher", "student", "judge"):
        problems += _engine_problems(f"engines.{role}", cfg.engines[role])
    for name, judge in cfg.stages.coherence.judges.items():
        problems += _engine_problems(f"stages.coherence.judges.{name}", judge)
    problems += _sft_data_problems(cfg)
    problems += _introspection_problems(cfg)
    run_dir = job_run_dir(cfg)
    where = writable_folder_problem(run_dir)
    if where is not None:
        problems.append(Problem("run_root", cfg.run_root, where))
    return problems


def validate_evaluate_config(cfg: DictConfig) -> None:
    """``launchers.evaluate``'s checks before it creates ``out_dir``: the same value checks as a
    training job's, on its own schema, its engines, and a writable ``out_dir``."""
    problems = field_problems(EvaluateConfig, cfg)
    for role in ("student", "judge"):
        problems += _engine_problems(f"engines.{role}", cfg.engines[role])
    problems += _out_dir_problems(cfg)
    if problems:
        raise CharacterError(describe_problems(problems))


def validate_robustness_config(cfg: DictConfig) -> None:
    """``launchers.robustness``'s checks before it writes anything: values (the classifier's
    included) and a writable ``out_dir``."""
    problems = field_problems(RobustnessReportConfig, cfg) + _out_dir_problems(cfg)
    if problems:
        raise CharacterError(describe_problems(problems))


def _out_dir_problems(cfg: DictConfig) -> list[Problem]:
    if OmegaConf.is_missing(cfg, "out_dir"):
        return [Problem("out_dir", "???", "a folder to write the results into, e.g. out_dir=evals/loving")]
    where = writable_folder_problem(Path(str(cfg.out_dir)))
    return [] if where is None else [Problem("out_dir", cfg.out_dir, where)]


def _engine_problems(key: str, engine: DictConfig) -> list[Problem]:
    """The places one engine names: a served model and URL for HTTP, folders or hub ids else."""
    problems: list[Problem] = []
    if engine.backend == "openai":
        if OmegaConf.is_missing(engine, "model") or not engine.model:
            served = "???" if OmegaConf.is_missing(engine, "model") else engine.model
            problems.append(Problem(f"{key}.model", served, "the name of the model the server serves"))
        problems += _endpoint_problems(key, engine)
        if engine.api_key_env and not os.environ.get(str(engine.api_key_env)):
            expected = (
                f"the name of a set environment variable holding the API key; ${engine.api_key_env} is unset"
            )
            problems.append(Problem(f"{key}.api_key_env", engine.api_key_env, expected))
    elif engine.backend in LOCAL_BACKENDS:
        for field, markers in (
            ("model", ("config.json",)),
            ("tokenizer", ("tokenizer_config.json", "tokenizer.json")),
        ):
            value = None if OmegaConf.is_missing(engine, field) else engine.get(field)
            problem = model_location_problem(str(value), markers) if value else None
            if problem is not None:
                problems.append(Problem(f"{key}.{field}", value, problem))
    if engine.base_url:
        problem = url_problem(str(engine.base_url))
        if problem is not None:
            problems.append(Problem(f"{key}.base_url", engine.base_url, problem))
    return problems


def _endpoint_problems(key: str, engine: DictConfig) -> list[Problem]:
    """An HTTP engine's URL: ``base_url``, or ``base_url_env`` naming a set variable that holds one."""
    variable = engine.get("base_url_env")
    if not variable:
        if engine.base_url:
            return []
        return [Problem(f"{key}.base_url", engine.base_url, "the server's http(s) URL (or base_url_env)")]
    if engine.base_url:
        return [Problem(f"{key}.base_url_env", variable, "null when base_url is set (one place for the URL)")]
    value = os.environ.get(str(variable))
    if not value:
        expected = f"the name of a set environment variable holding the server's URL; ${variable} is unset"
        return [Problem(f"{key}.base_url_env", variable, expected)]
    problem = url_problem(value)
    if problem is not None:
        return [Problem(f"{key}.base_url_env", variable, f"${variable} to hold a URL: {problem}")]
    return []


def _sft_data_problems(cfg: DictConfig) -> list[Problem]:
    """The SFT set's sources (App. B.4): at least one kind, and another run's data from another
    run (``+ablation=other_model`` on the source model itself would train on its own data)."""
    data = cfg.stages.sft_data
    problems = []
    sources = list(data.sources)
    if not sources or len(set(sources)) != len(sources):
        expected = "a non-empty list of distinct introspection sources (reflection, interaction)"
        problems.append(Problem("stages.sft_data.sources", sources, expected))
    if data.source_run and Path(str(data.source_run)).resolve() == main_run_dir(cfg).resolve():
        expected = (
            f"null, or the run directory of another model's job of this persona; this is "
            f"{cfg.model.name}'s own run (set stages.sft_data.source_run to another model's)"
        )
        problems.append(Problem("stages.sft_data.source_run", data.source_run, expected))
    return problems


def _introspection_problems(cfg: DictConfig) -> list[Problem]:
    """``dpo_weights=merged`` has the student engine load the DPO-merged weights; a student that
    names a model of its own (a served one) would be sampled without the DPO delta instead. Only
    for the introspection stages the job runs (an empty ``stage.run`` runs them all)."""
    student = cfg.engines.student
    served = None if OmegaConf.is_missing(student, "model") else student.model
    if not served:
        return []
    selected = list(cfg.stage.run) or PIPELINE_ORDER
    return [
        Problem(
            f"stages.{stage}.dpo_weights",
            "merged",
            f"'adapter' while engines.student.model={served!r} names a model of its own (with "
            "'merged' that model would be sampled without the DPO delta; with 'adapter' every "
            "request names the DPO adapter, which its server must load)",
        )
        for stage in ("reflection", "interaction")
        if cfg.stages[stage].dpo_weights == "merged" and stage in selected
    ]


def describe_problems(problems: list[Problem]) -> str:
    """One paragraph: each bad value with its key, where it was set, and what was expected."""
    parts = [
        f"{p.key}={_shown(p.value)} (from {value_source(p.key)}): expected {p.expected}" for p in problems
    ]
    head = "a config value is not valid" if len(parts) == 1 else f"{len(parts)} config values are not valid"
    return f"{head}: " + "; ".join(parts) + ". Nothing was written or moved."


def _shown(value: Any) -> str:
    """The value as the user would write it in YAML or on the command line."""
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)
