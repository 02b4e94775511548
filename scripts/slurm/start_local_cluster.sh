#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine, for the workflow tests (tests/workflow/test_slurm.py)
# and for trying `snakemake --profile slurm` without a cluster. Needs root and Debian/Ubuntu (apt-get).
#
#   sudo scripts/slurm/start_local_cluster.sh     # idempotent: a running cluster is left as it is
#   sudo scripts/slurm/stop_local_cluster.sh
#
# What it does, in order:
#   1. installs Debian's slurm-wlm and munge if `slurmctld` or `munged` is missing (apt-get);
#   2. writes a minimal slurm.conf into the state directory ($DOS_SLURM_STATE, default /tmp/dos-slurm):
#      one node `localhost` with this machine's CPUs and 90% of its memory, one partition `debug` (default),
#      munge authentication, no accounting (so `sacct` does not work: the profile queries with squeue);
#   3. links /etc/slurm/slurm.conf to it, so that sinfo/sbatch/squeue find it without SLURM_CONF; an existing
#      slurm.conf that is not ours is left alone, and then `export SLURM_CONF=$STATE/slurm.conf` is needed;
#   4. starts munged (unless one runs), slurmctld and slurmd by hand (no systemd); logs (slurmctld.log,
#      slurmd.log) and pid files go to the state directory;
#   5. waits until `sinfo` shows the node idle (at most $DOS_SLURM_WAIT seconds, default 60).
set -euo pipefail

STATE=${DOS_SLURM_STATE:-/tmp/dos-slurm}
WAIT=${DOS_SLURM_WAIT:-60}
CONF=$STATE/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF

log() { echo "start_local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts the daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
fi

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }  # pid file -> is that process running?

# Already up? (our daemons run and the node is usable) -- then there is nothing to do. sinfo is asked only when
# they run: without a controller it retries for ~10 s, and without a slurm.conf it searches DNS for a minute.
if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" \
        && sinfo -h -n localhost -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
    log "already running (sinfo: $(sinfo -h -n localhost -o '%P %t'))"
    exit 0
fi

mkdir -p "$STATE/ctld" "$STATE/d"

# This machine's layout as slurmd sees it (CPUs, sockets, cores, threads), memory lowered to 90% of it
hardware=$(slurmd -C | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat > "$CONF" <<EOF
# Written by scripts/slurm/start_local_cluster.sh: a single-node cluster for tests.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=300
NodeName=localhost ${hardware}RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p /etc/slurm
if [ -L "$ETC_CONF" ] || [ ! -e "$ETC_CONF" ]; then
    ln -sfn "$CONF" "$ETC_CONF"
else
    log "$ETC_CONF exists and is not ours: left alone; clients need: export SLURM_CONF=$CONF"
fi

# munge: the key comes with the package; the socket directory is created at boot by systemd, so here by hand.
if ! pgrep -u munge -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"  # so that stop_local_cluster.sh stops it, and only then
fi
munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

start_daemon() {  # name, pid file, command...
    local name=$1 pidfile=$2; shift 2
    alive "$pidfile" && return 0
    # -D keeps it in the foreground of its own background shell; nohup and setsid detach it from ours
    setsid nohup "$@" >"$STATE/$name.log" 2>&1 < /dev/null &
}
# -c: clear the state of an earlier run (jobs, node states): start clean
start_daemon slurmctld "$STATE/slurmctld.pid" slurmctld -D -c -f "$CONF"
start_daemon slurmd "$STATE/slurmd.pid" slurmd -D -N localhost -f "$CONF"

for _ in $(seq "$WAIT"); do
    state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
    case $state in
        idle|mix|alloc)
            log "up: $(sinfo -h -o '%P %D %t %c CPUs %m MB') (config $CONF)"
            exit 0 ;;
        down*|drain*|inval*)  # e.g. after a restart: return the node to service
            scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
log "the node did not become idle within ${WAIT}s; last state: '${state:-no answer}'"
tail -n 20 "$STATE"/slurmctld.log "$STATE"/slurmd.log >&2 || true
exit 1
