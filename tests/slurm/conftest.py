"""The SLURM cluster fixture: a real slurmctld, slurmd and munged for the session, in a temp folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurm.cluster import LocalSlurm, missing_binaries


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """Start the single-node cluster once; stop it at the end of the session, also after failures.

    Nothing runs as a service on a fresh machine, so the tests start the daemons themselves.
    scripts/test.sh installs the packages (as root); without them the SLURM tests are skipped,
    unless we are root, where a missing install is a failure of the setup to report.
    """
    missing = missing_binaries()
    if missing:
        message = f"SLURM is not installed (missing {', '.join(missing)}); run bash scripts/slurm/install.sh"
        if os.geteuid() == 0:
            pytest.fail(message)
        pytest.skip(message)
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (slurmd starts jobs as their user)")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        # Also after a start that failed half-way: stop whatever did start.
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster: LocalSlurm, monkeypatch: pytest.MonkeyPatch) -> LocalSlurm:
    """The cluster, with SLURM_CONF exported for this test (the launcher's sbatch reads it)."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    return slurm_cluster
