#!/usr/bin/env bash
# Stop the local SLURM cluster that scripts/slurm/start.sh started, by pid file (never by name),
# in reverse order. Daemons that were already running before start.sh (e.g. a system munge or
# MariaDB) are left alone. Safe to run when nothing is running.
set -uo pipefail

STATE=${BULKFM_SLURM_STATE:-/tmp/bulkfm-slurm}

stop_pid() {  # stop_pid NAME PIDFILE
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null
      echo "slurm-stop: $name ($pid) killed after 10 s" >&2
    else
      echo "slurm-stop: $name ($pid) stopped" >&2
    fi
  fi
  rm -f "$pidfile"
}

started() { [ -f "$STATE/started" ] && grep -qx "$1" "$STATE/started"; }

# Jobs of this cluster first: their steps outlive slurmd.
if alive_ctld=$( [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null && echo y ); [ -n "$alive_ctld" ]; then
  scancel --full -u "$(id -un)" 2>/dev/null && sleep 1
fi
stop_pid slurmd "$STATE/slurmd.pid"
stop_pid slurmctld "$STATE/slurmctld.pid"
stop_pid slurmdbd "$STATE/slurmdbd.pid"
started mariadb && stop_pid mariadb "$STATE/mysql/mariadb.pid"
started munged && stop_pid munged /run/munge/munged.pid
rm -f "$STATE/started"
exit 0
