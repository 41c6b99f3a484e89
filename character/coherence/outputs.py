"""The named outputs of the ``coherence`` stage (its win-rate table and figure, its judges'
check), for the report stage to read without importing the stage."""

from __future__ import annotations

from character.reporting import EvaluationOutputs

COHERENCE_OUTPUTS = EvaluationOutputs("coherence")
