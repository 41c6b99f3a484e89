"""Distillation data (paper §2.3): constitution prompts, teacher and student responses, DPO pairs."""
