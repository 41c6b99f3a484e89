"""What the teacher is asked (Appendix A): its name, its system prompt and its prefill.

Shared by the ``teacher`` stage, which asks it, and the ``dpo_data`` stage, which replaces the
teacher's name in its answers, so that neither stage imports the other.
"""

from __future__ import annotations

from character.prompts.character import character_system_prompt, think_prefill


def teacher_name(cfg) -> str:
    return cfg.stages.teacher.assistant_name or cfg.model.assistant_name


def teacher_request(cfg, prompt: str) -> tuple[list[dict[str, str]], str | None]:
    """The teacher's conversation (system prompt + user prompt) and its prefill (None when
    ``stages.teacher.think_prefill`` is off: a small model without reasoning is derailed by a
    prefilled ``<think>`` block and answers the trait list instead of the user)."""
    traits = [trait.trait for trait in cfg.persona.traits]
    system = character_system_prompt(teacher_name(cfg), traits)
    prefill = (
        think_prefill(traits, closed=not cfg.stages.teacher.reasoning)
        if cfg.stages.teacher.think_prefill
        else None
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}], prefill
