#!/usr/bin/env bash
# Stop the single-node cluster of start_local_cluster.sh: slurmd, slurmctld (by their pid files), then munged
# if start_local_cluster.sh started it (and --keep-munge is not given). State and logs stay in
# $DOS_SLURM_STATE (default /tmp/dos-slurm) for inspection.
set -euo pipefail

STATE=${DOS_SLURM_STATE:-/tmp/dos-slurm}

stop() {  # pid file
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
if [ "${1:-}" != "--keep-munge" ] && [ -e "$STATE/munged.ours" ]; then
    stop /run/munge/munged.pid
    rm -f "$STATE/munged.ours"
fi
# the /etc/slurm/slurm.conf link points into the state directory: remove it with the cluster
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$STATE/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
echo "stop_local_cluster: stopped (state kept in $STATE)" >&2
