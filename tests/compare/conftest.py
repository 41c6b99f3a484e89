"""The compare tests read the same toy sweep as the tracking tests (run once per session)."""

from __future__ import annotations

import pytest

from tests.tracking.sweep import ToySweep, toy_sweep


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> ToySweep:
    return toy_sweep(tmp_path_factory.getbasetemp() / "toy-sweep")
