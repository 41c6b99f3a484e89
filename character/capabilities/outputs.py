"""The named outputs of the ``capabilities`` stage (its before/after table and figure), for the
report stage to read without importing the stage."""

from __future__ import annotations

from character.reporting import EvaluationOutputs

CAPABILITIES_OUTPUTS = EvaluationOutputs("capabilities")
