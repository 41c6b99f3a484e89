"""Check LoRA target modules against the real model before training.

PEFT silently ignores a target name that matches nothing in the model (the reference
implementation lost LoRA layers on Gemma 3 this way). Here every configured entry must match at
least one linear layer, or training does not start. An entry is either a module name matched as a
suffix (``q_proj`` matches ``model.layers.0.self_attn.q_proj``), as PEFT does, or, when it holds
regex characters, a regular expression matched against the full module name (used for Gemma 3 to
keep LoRA off its vision tower). Regex entries are expanded to the full names they match, because
OpenRLHF hands PEFT a list, and PEFT only applies regexes given as a single string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from character.errors import CharacterError

_REGEX_CHARS = set(".*+?[]()|^$\\{}")


def is_regex(entry: str) -> bool:
    return any(char in _REGEX_CHARS for char in entry)


def linear_module_names(model_path: str) -> list[str]:
    """Names of the model's linear layers, from its config alone (meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:  # multimodal releases (Gemma 3) are not causal-LM classes
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_config(config)
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def resolve_lora_targets(targets: Sequence[str], module_names: Sequence[str], model_name: str) -> list[str]:
    """The PEFT ``target_modules`` list for ``targets``; an entry matching nothing is an error."""
    if not targets:
        raise CharacterError(
            f"model {model_name!r} has an empty lora_target_modules; expected the names of the "
            "linear layers LoRA should adapt (e.g. q_proj, k_proj, v_proj, o_proj, ...)."
        )
    resolved: list[str] = []
    for entry in targets:
        if is_regex(entry):
            pattern = re.compile(entry)
            matches = [name for name in module_names if pattern.fullmatch(name)]
            resolved.extend(matches)
        else:
            matches = [name for name in module_names if name == entry or name.endswith(f".{entry}")]
            resolved.append(entry)
        if not matches:
            examples = sorted({name.rsplit(".", 1)[-1] for name in module_names})[:12]
            raise CharacterError(
                f"LoRA target {entry!r} of model {model_name!r} (model.lora_target_modules) matches "
                f"no linear layer of the model; its linear layers are named e.g. {examples}. "
                "Fix the name so LoRA is not silently skipped on those layers."
            )
    return resolved
