#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite on this machine (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The SLURM tests (tests/slurm) start a real single-node SLURM; install it if missing (needs root).
bash scripts/slurm/install.sh || echo "test: SLURM is missing (see above); tests/slurm cannot run" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q --durations=25 "$@"
