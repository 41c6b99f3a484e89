"""Fixtures of the tracking tests: the shared toy sweep, and a clean stage registry."""

from __future__ import annotations

import pytest

from character.pipeline import builtin  # noqa: F401  (the built-in stages, registered first)
from character.pipeline import stage as stage_module
from tests.tracking.sweep import ToySweep, toy_sweep


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> ToySweep:
    return toy_sweep(tmp_path_factory.getbasetemp() / "toy-sweep")


@pytest.fixture
def plugin_stages():
    """Register the toy and persona stages for in-process runs, and unregister them afterwards
    (a registered plugin stage would join every later job that runs all stages)."""
    saved = dict(stage_module._REGISTRY)
    import tests.plugins.toy_stages as toy
    import tests.tracking.persona_stage as persona

    for cls in (toy.ToyRows, toy.ToyCount, persona.PersonaStats):
        stage_module.register_stage(cls)
    yield
    stage_module._REGISTRY.clear()
    stage_module._REGISTRY.update(saved)
