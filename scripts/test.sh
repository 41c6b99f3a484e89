#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite on this machine (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The SLURM tests (tests/slurm) start a real single-node SLURM; install it if missing (needs root).
bash scripts/slurm/install.sh || echo "test: SLURM is missing (see above); tests/slurm cannot run" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers (pytest-xdist), one per core of the 2-core CI machine: most tests spend their time
# starting processes and importing libraries, one core at a time. tests/conftest.py sends each
# test folder to one worker as a whole (its fixtures run once). OMP_WAIT_POLICY=PASSIVE: OpenMP
# threads that spin while waiting take the other worker's core; two tiny DPO stages side by side
# took 57 s each spinning, 42 s passive (38 s alone). Pass -n 0 to run in one process.
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest -q -n 2 --durations=25 "$@"
