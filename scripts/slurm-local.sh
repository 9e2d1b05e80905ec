#!/usr/bin/env bash
# slurm-local.sh — a one-node Slurm cluster on this machine, with fake GPUs, for trying and
# testing `clipgrid run --backend slurm`.
#
#   sudo bash scripts/slurm-local.sh start    # munged, slurmctld, slurmd; idempotent
#   sudo bash scripts/slurm-local.sh status   # running or not (exit 0 when sinfo answers)
#   sudo bash scripts/slurm-local.sh stop     # stops what start started
#   bash scripts/slurm-local.sh env           # the line to export SLURM_CONF for the clients
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (scripts/install-deps.sh).
# No systemd: the daemons are started directly. Everything lives under $STATE (default
# /var/spool/clipgrid-slurm): slurm.conf and gres.conf, state and spool dirs, logs, pid files.
# /etc/slurm/slurm.conf is never overwritten: when it does not exist it becomes a symlink to
# ours (so plain `sbatch` works), and `stop` removes that symlink again.
#
# The node declares CLIPGRID_SLURM_GPUS fake GPUs (default 4): character devices
# /dev/fakegpu0.. (the same device numbers as /dev/null) listed in gres.conf, so `--gres=gpu:1`
# is scheduled and each task gets its own CUDA_VISIBLE_DEVICES, as on a real GPU node.
set -euo pipefail

STATE="${CLIPGRID_SLURM_STATE:-/var/spool/clipgrid-slurm}"
NGPUS="${CLIPGRID_SLURM_GPUS:-4}"
NCPUS="${CLIPGRID_SLURM_CPUS:-8}"   # declared CPUs (config_overrides: may exceed the real count)
CONF="$STATE/etc/slurm.conf"
HOST="$(hostname -s)"

die() { echo "slurm-local: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root): sudo bash $0 $1"
    for b in munged slurmctld slurmd sinfo scontrol; do
        command -v "$b" >/dev/null || die "$b not found: install the Debian packages with" \
            "'sudo bash scripts/install-deps.sh' (slurmctld slurmd slurm-client munge)"
    done
}

sinfo_ok() { SLURM_CONF="$CONF" timeout 5 sinfo -h -o %T >/dev/null 2>&1; }

node_state() { SLURM_CONF="$CONF" timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
    mkdir -p "$STATE/etc" "$STATE/ctld" "$STATE/d" "$STATE/log" "$STATE/run"
    local mem
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
    local last=$((NGPUS - 1))
    cat >"$CONF.tmp" <<EOF
# written by clipgrid scripts/slurm-local.sh: a one-node test cluster with $NGPUS fake GPUs
ClusterName=clipgrid-local
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
MinJobAge=3600
KillWait=5
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPUS RealMemory=$mem Gres=gpu:$NGPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    echo "NodeName=$HOST Name=gpu File=/dev/fakegpu[0-$last]" >"$STATE/etc/gres.conf"
    if [ ! -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
        mkdir -p /etc/slurm
        ln -s "$CONF" /etc/slurm/slurm.conf
    fi
}

start_munge() {
    if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then return; fi
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --force 9>&-
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && return; sleep 0.1; done
    die "munged did not come up (see /var/log/munge/munged.log)"
}

start() {
    need_root start
    local t0=$SECONDS
    exec 9>/run/clipgrid-slurm.lock
    flock 9
    case "$(node_state)" in
    idle|mixed|allocated)
        echo "slurm-local: already running (node $HOST $(node_state)); export SLURM_CONF=$CONF"
        return ;;
    esac
    for i in $(seq 0 $((NGPUS - 1))); do
        [ -e "/dev/fakegpu$i" ] || mknod "/dev/fakegpu$i" c 1 3
    done
    write_config
    start_munge
    if ! pid_alive "$STATE/run/slurmctld.pid"; then
        rm -rf "${STATE:?}/ctld"/*
        SLURM_CONF="$CONF" slurmctld -c -i 9>&-   # -c: no old state; -i: ignore missing state
    fi
    for _ in $(seq 100); do sinfo_ok && break; sleep 0.1; done
    sinfo_ok || die "slurmctld did not answer (see $STATE/log/slurmctld.log)"
    if ! pid_alive "$STATE/run/slurmd.pid"; then
        SLURM_CONF="$CONF" slurmd 9>&-
    fi
    local st=""
    for _ in $(seq 300); do
        st=$(node_state)
        case "$st" in
        idle|mixed|allocated) break ;;
        down*|drain*) SLURM_CONF="$CONF" scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.1
    done
    case "$st" in idle|mixed|allocated) ;; *) die "node $HOST is '$st', not idle (see $STATE/log/slurmd.log)" ;; esac
    echo "slurm-local: node $HOST up with $NGPUS fake GPUs in $((SECONDS - t0)) s; export SLURM_CONF=$CONF"
}

stop_pid() {
    local f=$1 name=$2
    if pid_alive "$f"; then
        local pid
        pid=$(cat "$f")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "slurm-local: stopped $name ($pid)"
    fi
    rm -f "$f"
}

stop() {
    need_root stop
    exec 9>/run/clipgrid-slurm.lock
    flock 9
    # cancel what is still queued, so no job process outlives the cluster
    if sinfo_ok; then SLURM_CONF="$CONF" scancel --full --state=RUNNING,PENDING --user=root 2>/dev/null || true; fi
    stop_pid "$STATE/run/slurmd.pid" slurmd
    stop_pid "$STATE/run/slurmctld.pid" slurmctld
    if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    # munged is left running: other software on the machine may use it.
}

status() {
    if sinfo_ok; then
        echo "slurm-local: running; node $HOST is $(node_state); export SLURM_CONF=$CONF"
        SLURM_CONF="$CONF" sinfo
        return 0
    fi
    echo "slurm-local: not running (start it with: sudo bash $0 start)"
    return 3
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
