"""The self-distillation warning: at paper scale, which of the paper's other models are missing.

An engine whose ``model`` is null runs the model being trained. That keeps a job runnable with
nothing but the student's weights, and at ``scale=paper`` it then silently becomes
self-distillation: the student writes its own "teacher" answers, expands its own prompts and
judges itself, which is not the paper's method (GLM-4.5-Air teacher and judge, Llama-3.3-70B
generator, three hosted coherence judges; ``+setup=paper``). It stays possible, but the job says
so at its start and in ``summary.json``. Smaller scales are exercises of the pipeline and say
nothing.
"""

from __future__ import annotations

from omegaconf import DictConfig

# role -> what the paper used in that role
PAPER_ROLES = {
    "teacher": "teacher (the paper's: GLM-4.5-Air)",
    "generator": "prompt generator (Llama-3.3-70B-Instruct)",
    "judge": "revealed-preference judge (GLM-4.5-Air)",
    "coherence": "coherence judge (GPT-5-mini, Claude Haiku 4.5, Gemini 2.0 Flash-Lite)",
}


def self_played_roles(cfg: DictConfig) -> list[str]:
    """The roles of ``PAPER_ROLES`` the trained model plays itself in a ``scale=paper`` job."""
    if str(cfg.scale) != "paper":
        return []
    roles = [role for role in ("teacher", "generator", "judge") if not cfg.engines[role].model]
    # the coherence stage judges with stages.coherence.judges, or with engines.judge when none
    if not cfg.stages.coherence.judges and not cfg.engines.judge.model:
        roles.append("coherence")
    return roles


def self_distillation_warning(cfg: DictConfig) -> str | None:
    """One paragraph naming the roles the student plays and how to get the paper's setup."""
    roles = self_played_roles(cfg)
    if not roles:
        return None
    played = "; ".join(PAPER_ROLES[role] for role in roles)
    keys = ", ".join(
        "stages.coherence.judges" if role == "coherence" else f"engines.{role}.model" for role in roles
    )
    return (
        f"SELF-DISTILLATION, not the paper's method: scale=paper, but {cfg.model.name} itself is the "
        f"{played}, because {keys} is not set. Add +setup=paper for the paper's models "
        "(docs/method.md), or set those engines."
    )
