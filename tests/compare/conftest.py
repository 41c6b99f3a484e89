"""The compare tests read the same toy sweep as the tracking tests, and the results views a real
2-model x 2-persona tiny sweep (each run once per session)."""

from __future__ import annotations

import pytest

from tests.compare.paper_sweep import PaperSweep, paper_sweep
from tests.tracking.sweep import ToySweep, toy_sweep


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> ToySweep:
    return toy_sweep(tmp_path_factory.getbasetemp() / "toy-sweep")


@pytest.fixture(scope="session")
def paper(tmp_path_factory: pytest.TempPathFactory) -> PaperSweep:
    """The real 2-model x 2-persona tiny sweep the results views read (several minutes, once)."""
    return paper_sweep(tmp_path_factory.getbasetemp() / "paper-sweep")
