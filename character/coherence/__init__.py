"""Coherence (paper §3.3, App. D): the ``coherence`` stage's pairwise judgments of methods'
responses, with the judge's known-answer check."""
