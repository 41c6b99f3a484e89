"""Robustness (paper §3.2, App. C): the ``robustness`` stage's responses per method and split, and
the cross-persona classifier that scores them (``launchers.robustness``)."""
