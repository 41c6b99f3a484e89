"""Evaluations (paper §3): revealed preferences; robustness, coherence and baselines follow."""
