"""Importing this module registers every built-in stage with the pipeline runner."""

from character.pipeline import prepare  # noqa: F401
