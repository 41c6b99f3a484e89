"""Which introspection data the SFT set holds, and how many examples each stage generates.

The method (§2.4) trains on both kinds: ``samples_per_prompt`` self-reflections for each of the
ten Appendix B.1 prompts, and ``conversations`` self-interactions. Appendix B.4's ablations vary
the source (``stages.sft_data``):

- one kind only (``sources``): with ``same_size`` (the default) that kind generates as many
  examples as both would have (the paper's 12,000: 10,000 + 2,000), the other none. The paper's
  extra 2,000 reflections came from "two similar variations" of the ten prompts, which it does not
  print; here they come from the same ten prompts, spread evenly. Extra self-interactions keep the
  half free, half leading split (6,000 of each, as in B.4).
- another model's data (``source_run``): this job generates none and trains on that run's.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from character.prompts.character import REFLECTION_PROMPTS


@dataclass(frozen=True)
class IntrospectionPlan:
    """How many examples this job generates: reflections per B.1 prompt, and conversations."""

    reflections_per_prompt: tuple[int, ...]
    conversations: int

    @property
    def reflections(self) -> int:
        return sum(self.reflections_per_prompt)


def introspection_plan(cfg: DictConfig) -> IntrospectionPlan:
    """The counts the reflection and interaction stages generate under ``cfg``."""
    data = cfg.stages.sft_data
    prompts = len(REFLECTION_PROMPTS)
    reflections = int(cfg.stages.reflection.samples_per_prompt) * prompts
    conversations = int(cfg.stages.interaction.conversations)
    sources = set(data.sources)
    if data.source_run:  # another run's data is trained on; nothing is generated here
        reflections = conversations = 0
    elif "reflection" not in sources:
        conversations += reflections if data.same_size else 0
        reflections = 0
    elif "interaction" not in sources:
        reflections += conversations if data.same_size else 0
        conversations = 0
    each, rest = divmod(reflections, prompts)
    per_prompt = tuple(each + (1 if index < rest else 0) for index in range(prompts))
    return IntrospectionPlan(per_prompt, conversations)
