#!/usr/bin/env bash
# Stop the cluster started by start_local_cluster.sh from DIR: slurmd, slurmctld, then munged (the
# others need munge to shut down cleanly). Only the processes named in DIR's pid files are stopped.
# Safe to run twice, or after a start that failed half-way. DIR itself is kept (logs, state).
# Usage: bash scripts/slurm/stop_local_cluster.sh DIR
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
DIR="$1"

# Running jobs belong to slurmd's job steps; cancel them so no job process outlives the cluster.
if [ -f "$DIR/slurm.conf" ] && [ -f "$DIR/slurmctld.pid" ]; then
  export SLURM_CONF="$DIR/slurm.conf"
  timeout 10 scancel --full --user="$(id -un)" 2>/dev/null || true
  # Give their job steps up to 20 s to end while slurmd is still there to clean them up.
  for _ in $(seq 40); do
    [ -z "$(timeout 5 squeue -h -t running,completing 2>/dev/null || true)" ] && break
    sleep 0.5
  done
fi

# A pid that exists and is not a zombie (in containers, pid 1 may be slow to reap exited daemons).
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# SIGTERM, wait up to 15 s, then SIGKILL: a daemon that hangs must not outlive a test session.
stop_pid_file() {
  local pid_file="$1" name="$2" pid
  [ -f "$pid_file" ] || return 0
  pid="$(cat "$pid_file")"
  if [ -n "$pid" ] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
      alive "$pid" || break
      sleep 0.5
    done
    if alive "$pid"; then
      echo "stop: $name ($pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pid_file"
}

stop_pid_file "$DIR/slurmd.pid" slurmd
stop_pid_file "$DIR/slurmctld.pid" slurmctld
stop_pid_file "$DIR/munge/munged.pid" munged
echo "local SLURM cluster in $DIR stopped"
