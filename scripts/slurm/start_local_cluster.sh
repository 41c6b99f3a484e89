#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged, slurmctld, slurmd) whose every file lives in one folder,
# to try `hydra/launcher=slurm` on one machine; the tests in tests/slurm use it too.
#
# Usage: bash scripts/slurm/start_local_cluster.sh DIR
#        source DIR/env.sh                 # exports SLURM_CONF for sbatch, squeue, the launcher
#        bash scripts/slurm/stop_local_cluster.sh DIR
#
# Environment (all optional): SLURMCTLD_PORT, SLURMD_PORT (default: free ports picked here),
# SLURM_CPUS (default: nproc), SLURM_MEMORY_MB (default: 90% of MemTotal).
#
# Nothing outside DIR is written: slurm.conf, munge key and socket, state, spool, logs and pid files
# are all in it, so it does not clash with a system SLURM or with another copy of this cluster.
# Accounting is off (no slurmdbd): sacct does not work, squeue and scontrol do. Needs root (slurmd
# runs jobs as their submitting user) and the packages from scripts/slurm/install.sh.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"

for command in munged slurmctld slurmd scontrol sinfo; do
  command -v "$command" >/dev/null || { echo "start: $command not found; run scripts/slurm/install.sh" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
  echo "start: slurmd must run as root to start jobs; run this script as root." >&2
  exit 1
fi
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
  echo "start: a cluster already runs from $DIR (stop it with stop_local_cluster.sh)" >&2
  exit 1
fi

# A port nobody listens on. bash's /dev/tcp connects only when a listener exists.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 20000))
    if port_is_free "$port"; then echo "$port"; return 0; fi
  done
  echo "start: found no free port" >&2
  return 1
}
ctld_port="${SLURMCTLD_PORT:-$(pick_port)}"
slurmd_port="${SLURMD_PORT:-$(pick_port)}"
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(pick_port)"; done
cpus="${SLURM_CPUS:-$(nproc)}"
# slurmd drains a node that reports less memory than slurm.conf claims, so claim a bit less.
memory_mb="${SLURM_MEMORY_MB:-$(awk '/^MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}"
host="$(hostname -s)"

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
chmod 700 "$DIR/munge"

# If anything below fails, stop what already started rather than leave daemons behind.
trap 'echo "start: failed; stopping what started (logs in $DIR/log)" >&2; bash "$here/stop_local_cluster.sh" "$DIR" >&2' ERR

# munge: a key of our own and a socket in DIR; --force accepts a socket folder that is not the
# system's /run/munge (it checks ownership and modes and would refuse otherwise).
if [ ! -f "$DIR/munge/munge.key" ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$DIR/munge/munge.key"
  else  # munge before 0.5.14 has no mungekey; any 1 KiB of random bytes is a valid key
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
fi
chmod 400 "$DIR/munge/munge.key"
munged --force \
  --key-file="$DIR/munge/munge.key" \
  --socket="$DIR/munge/munge.socket" \
  --pid-file="$DIR/munge/munged.pid" \
  --log-file="$DIR/log/munged.log" \
  --seed-file="$DIR/munge/munged.seed"

cat >"$DIR/slurm.conf" <<EOF
# Written by scripts/slurm/start_local_cluster.sh: one node, everything under $DIR.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
# Both daemons and every client reach munged through this socket, not the system one.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in containers: track job processes by parentage, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# CPUs are the consumable resource, so two 1-CPU tasks of an array run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Accounting off: no slurmdbd to run. sacct then fails; squeue and scontrol show the jobs.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Keep finished jobs visible to scontrol for 10 minutes (the tests read their final state).
MinJobAge=600
# Jobs may be requeued (submitit requeues a preempted or timed-out job with scontrol requeue).
JobRequeue=1
NodeName=localnode NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=localnode Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$DIR/slurm.conf"
cat >"$DIR/env.sh" <<EOF
# source this file to use the cluster started from $DIR
export SLURM_CONF="$DIR/slurm.conf"
EOF

# Without -D both daemons fork into the background and write their pid files (used to stop them).
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localnode

# Ready when the node is idle: the controller answers and slurmd registered with it.
for _ in $(seq 60); do
  state="$(sinfo -h -n localnode -o '%t' 2>/dev/null || true)"
  if [ "$state" = "idle" ]; then
    echo "local SLURM cluster up: $DIR (controller port $ctld_port, $cpus CPUs, ${memory_mb} MB)"
    echo "use it with: source $DIR/env.sh"
    trap - ERR
    exit 0
  fi
  sleep 0.5
done
echo "start: the node did not become idle in 30 s (state: ${state:-none}); see $DIR/log" >&2
false
