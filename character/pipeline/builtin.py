"""Importing this module registers every built-in stage with the pipeline runner."""

from character.capabilities import stage as capabilities_stage  # noqa: F401
from character.coherence import stage as coherence_stage  # noqa: F401
from character.distill import dpo_data_stage, generation_stages, prompts_stage  # noqa: F401
from character.introspection import stages as introspection_stages  # noqa: F401
from character.persona_shift import stage as persona_shift_stage  # noqa: F401
from character.pipeline import prepare  # noqa: F401
from character.preferences import stage as eval_stage  # noqa: F401
from character.report import stage as report_stage  # noqa: F401
from character.robustness import stage as robustness_stage  # noqa: F401
from character.steering import stage as steer_stage  # noqa: F401
from character.training import stages  # noqa: F401
