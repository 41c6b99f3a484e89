"""Thin Hydra entry points: ``python -m launchers.train`` (the pipeline)."""
