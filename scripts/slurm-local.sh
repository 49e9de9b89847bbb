#!/usr/bin/env bash
# A real single-node Slurm (with accounting: slurmdbd + MariaDB) on localhost, for tests.
#
#   scripts/slurm-local.sh up [STATE_DIR]     install (Debian packages), configure, start
#   scripts/slurm-local.sh down [STATE_DIR]   stop every daemon by its pid file
#
# There is no systemd here: every daemon is started by hand. Idempotent: running daemons
# and an unchanged configuration are left alone. Facts: shared/reference/slurm-local.md.
# Tunables (environment): SLURM_CPUS (advertised CPUs, default 16), SLURM_MIN_JOB_AGE
# (seconds scontrol keeps finished jobs, default 300).
set -euo pipefail

action=${1:-up}
state=${2:-/var/lib/gangamon-slurm}
cpus=${SLURM_CPUS:-16}
min_job_age=${SLURM_MIN_JOB_AGE:-300}

log() { printf 'slurm-local: %s\n' "$*" >&2; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "timed out after ${seconds}s waiting for $what"
    return 1
}

stop_pids() {  # SIGTERM every pid file given, wait up to 10 s, then SIGKILL
    local pids=() f
    for f in "$@"; do
        [ -s "$f" ] && pids+=("$(cat "$f")")
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "${pids[@]}" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

down() {
    stop_pids "$state/run/slurmd.pid" "$state/run/slurmctld.pid" "$state/run/slurmdbd.pid"
    stop_pids /run/mysqld/mysqld.pid /run/munge/munged.pid
    log "stopped"
}

install_packages() {
    local missing=()
    for p in slurmctld slurmd slurm-client slurmdbd munge mariadb-server; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

start_munge() {
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge /var/lib/munge /var/log/munge
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged
        wait_for 10 munged sh -c 'munge -n | unmunge'
    fi
}

start_mariadb() {
    install -d -o mysql -g mysql /run/mysqld
    if ! mysqladmin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; then
        setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
            --bind-address=127.0.0.1 >/dev/null 2>&1 < /dev/null &
        wait_for 30 mariadb mysqladmin --socket=/run/mysqld/mysqld.sock ping
    fi
    mysql --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' \
        IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

write_configs() {
    install -d -m 0755 "$state"
    install -d -o slurm -g slurm -m 0755 "$state/ctld" "$state/log" "$state/run"
    install -d -m 0755 "$state/spool"
    rm -f /etc/slurm/cgroup.conf
    local memory
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    cat > /etc/slurm/slurmdbd.conf.new <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
PidFile=$state/run/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
    install -o slurm -g slurm -m 0600 /etc/slurm/slurmdbd.conf.new /etc/slurm/slurmdbd.conf
    rm -f /etc/slurm/slurmdbd.conf.new
    cat > /etc/slurm/slurm.conf.new <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.log
ReturnToService=2
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MinJobAge=$min_job_age
KillWait=5
OverTimeLimit=0
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
        mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
        # A changed node definition needs both daemons restarted (reconfigure refuses it).
        stop_pids "$state/run/slurmd.pid" "$state/run/slurmctld.pid"
    else
        rm -f /etc/slurm/slurm.conf.new
    fi
}

up() {
    install_packages
    start_munge
    start_mariadb
    write_configs
    if ! (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null; then
        slurmdbd
        wait_for 30 slurmdbd bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
    fi
    if ! scontrol ping 2>/dev/null | grep -q UP; then
        slurmctld -i
        wait_for 30 slurmctld sh -c 'scontrol ping | grep -q UP'
    fi
    if ! [ -s "$state/run/slurmd.pid" ] || ! kill -0 "$(cat "$state/run/slurmd.pid")" 2>/dev/null; then
        slurmd -N localhost
    fi
    if ! wait_for 30 "node localhost" sh -c 'sinfo -h -N -n localhost -o %T | grep -Eq "idle|mixed|alloc"'; then
        scontrol update NodeName=localhost State=RESUME || true
        if ! wait_for 10 "node localhost" sh -c 'sinfo -h -N -n localhost -o %T | grep -Eq "idle|mixed|alloc"'; then
            sinfo -R >&2 || true
            tail -n 20 "$state/log/slurmd.log" "$state/log/slurmctld.log" >&2 || true
            exit 1
        fi
    fi
    log "up: $cpus CPUs, MinJobAge=$min_job_age, accounting on, state in $state"
}

case $action in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [STATE_DIR]" >&2; exit 2 ;;
esac
