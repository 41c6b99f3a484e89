"""A real judge for the evaluation tests: the tiny model on the transformers backend."""

from __future__ import annotations

import pytest

from character.models.tiny import TinySpec, ensure_tiny_model
from tests.conftest import CACHE_DIR


@pytest.fixture(scope="session")
def tiny_judge():
    """The weakest judge there is (the tiny model judging), with constrained answers on."""
    from character.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(ensure_tiny_model(TinySpec(), CACHE_DIR)), dtype="float32", batch_size=8)
    yield engine
    engine.close()
