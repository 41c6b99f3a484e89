"""Experiment tracking: one Weights & Biases run per pipeline job (docs/tracking.md).

Importing this package does not import ``wandb``: with ``WANDB_MODE=disabled`` a job never loads it.
"""
