"""Compare runs across personas and models: ``python -m launchers.compare`` (docs/tracking.md).

Runs are read from local run directories, offline W&B runs or a W&B project, into one record per
(model, persona) with the same flat ``<stage>/<metric>`` names whatever the source.
"""
