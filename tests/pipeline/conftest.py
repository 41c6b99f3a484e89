"""The runner tests run the toy plugin stages; each test gets the registry back as it found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from character.pipeline import stage as stage_module


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    saved = dict(stage_module._REGISTRY)
    import tests.plugins.toy_stages as toy

    for cls in (toy.ToyRows, toy.ToyCount):
        stage_module.register_stage(cls)
    yield
    stage_module._REGISTRY.clear()
    stage_module._REGISTRY.update(saved)
