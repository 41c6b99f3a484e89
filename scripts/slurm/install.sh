#!/usr/bin/env bash
# Install the SLURM daemons, client commands and munge from the distribution's packages, if any is
# missing. Only needed to try the SLURM launcher on one machine (scripts/slurm/start_local_cluster.sh)
# and for the tests in tests/slurm; a real cluster already has SLURM.
# Usage: bash scripts/slurm/install.sh     (exit 1 with a message when it cannot install)
set -euo pipefail

needed=(slurmctld slurmd sinfo sbatch squeue scontrol scancel munged)
missing=()
for command in "${needed[@]}"; do
  # The daemons live in /usr/sbin, which is not on every user's PATH.
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("$command")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm install: missing ${missing[*]}; run this script as root, or install the packages" \
    "slurmctld slurmd slurm-client munge yourself (Debian/Ubuntu names)." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "slurm install: missing ${missing[*]} and there is no apt-get here; install SLURM" \
    "(slurmctld, slurmd, client commands) and munge with this system's package manager." >&2
  exit 1
fi

echo "slurm install: installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: the recommended extras (mail, documentation) are not needed here.
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
echo "slurm install: $(slurmctld -V)"
