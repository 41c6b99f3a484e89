"""Checks on a composed config that Hydra's type validation cannot express.

They run before anything is written, so bad input leaves no trace under the run directory. Each
failure is a ``CharacterError`` naming the config file, the key, the value, and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from character.errors import CharacterError


def option_source(group: str, option: str) -> str:
    """Where Hydra found ``group/option`` (a file path when possible), for error messages."""
    try:
        from hydra.core.hydra_config import HydraConfig

        sources = HydraConfig.get().runtime.config_sources
    except ValueError:  # not inside a Hydra app (e.g. tests composing configs)
        return f"{group}/{option}.yaml"
    for source in sources:
        if source.schema == "file":
            candidate = Path(source.path) / group / f"{option}.yaml"
        elif source.schema == "pkg":
            from importlib import resources

            try:
                root = resources.files(source.path.replace("/", "."))
            except ModuleNotFoundError:
                continue
            candidate = Path(str(root)) / group / f"{option}.yaml"
        else:
            continue
        if candidate.is_file():
            return str(candidate)
    return f"{group}/{option}.yaml"


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
            errors.append(f"key '{key}' is empty (expected a non-empty string)")
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
