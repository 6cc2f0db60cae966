#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this machine, to exercise profiles/slurm for real.
#
#   sudo .ci/slurm_setup.sh          # Debian 12 (bookworm), as root, no systemd needed
#
# Installs slurm-wlm 22.05 + munge + slurmdbd backed by mariadb, writes slurm.conf (one node
# "localhost" with this machine's CPUs and memory, one default partition "debug") and
# slurmdbd.conf, starts munged, mariadb, slurmdbd, slurmctld and slurmd as background daemons
# (they keep running after this script), registers the cluster in the accounting database, waits
# until the node is idle and sacct answers, runs a one-second smoke job, and installs the
# Snakemake SLURM executor plugin (pinned). The Snakemake executor needs accounting: without
# slurmdbd it waits forever on sacct.
#
# Idempotent: re-running checks each step and only redoes what is missing; daemons whose config
# changed are restarted. Every wait is bounded; any failure exits non-zero with a message.
# Environment: PYTHON (default: python), SLURM_CLUSTER (default: brainalign),
# SLURM_PLUGIN_VERSION (default below), APT_TIMEOUT (s, default 900).
set -euo pipefail

PYTHON=${PYTHON:-python}
CLUSTER=${SLURM_CLUSTER:-brainalign}
PLUGIN_VERSION=${SLURM_PLUGIN_VERSION:-2.8.0}
APT_TIMEOUT=${APT_TIMEOUT:-900}
PARTITION=debug
NODE=localhost
export DEBIAN_FRONTEND=noninteractive

t0=$(date +%s)
say() { echo "[slurm_setup +$(( $(date +%s) - t0 ))s] $*"; }
die() { echo "[slurm_setup] ERROR: $*" >&2; exit 1; }
# shellcheck disable=SC2154  # rc is assigned inside the trap
trap 'rc=$?; [ $rc -eq 0 ] || echo "[slurm_setup] FAILED (exit $rc) at line $LINENO; daemon logs: /var/log/slurm/, /var/log/mysql-ci.log" >&2' EXIT

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND once a second until it succeeds.
wait_for() {
    local limit=$1 what=$2; shift 2
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || die "timed out after ${limit}s waiting for $what"
        sleep 1
    done
}
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# stop PIDFILE: end the daemon whose pid the file names (only that process), wait until gone.
stop() {
    local pidfile=$1 pid
    running "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid"
    local end=$(( $(date +%s) + 30 ))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || die "pid $pid ($pidfile) did not stop within 30 s"
        sleep 1
    done
}
# install_file DEST MODE OWNER < content: write only if the content differs; returns 0 if changed.
install_file() {
    local dest=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat > "$tmp"
    if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"; chmod "$mode" "$dest"; chown "$owner" "$dest"; return 1
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
    rm -f "$tmp"
    return 0
}

[ "$(id -u)" -eq 0 ] || die "run as root (installs packages and starts system daemons)"
command -v apt-get >/dev/null || die "needs a Debian/Ubuntu system with apt-get"

# --- 1. packages ------------------------------------------------------------------------------
PKGS=(slurm-wlm slurmdbd munge mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt-get, at most ${APT_TIMEOUT}s per step)"
    timeout "$APT_TIMEOUT" apt-get update -qq || die "apt-get update failed or timed out"
    timeout "$APT_TIMEOUT" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
        > /var/log/slurm_setup_apt.log 2>&1 \
        || { tail -20 /var/log/slurm_setup_apt.log >&2; die "apt-get install ${missing[*]} failed or timed out"; }
else
    say "packages already installed: ${PKGS[*]}"
fi
for c in sinfo sacct sacctmgr sbatch slurmctld slurmd slurmdbd munged mysqld_safe mysqladmin mariadb; do
    command -v "$c" >/dev/null || die "command $c missing after install"
done
say "slurm-wlm $(dpkg-query -W -f="\${Version}" slurm-wlm), $(mariadb --version | awk '{print $5}' | tr -d ,)"

# --- 2. munge ---------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    wait_for 20 "munged" sh -c 'munge -n | unmunge'
fi

# --- 3. mariadb -------------------------------------------------------------------------------
install -d -o mysql -g mysql -m 0755 /run/mysqld
if mysqladmin ping >/dev/null 2>&1; then
    say "mariadb already running"
else
    [ -d /var/lib/mysql/mysql ] || { say "initialising mariadb data dir"; mariadb-install-db --user=mysql >/dev/null; }
    say "starting mariadb (mysqld_safe, in the background)"
    setsid nohup mysqld_safe --user=mysql --innodb-buffer-pool-size=256M \
        --innodb-lock-wait-timeout=900 > /var/log/mysql-ci.log 2>&1 < /dev/null &
    wait_for 60 "mariadb to answer mysqladmin ping" mysqladmin ping
fi
# the database password lives in slurmdbd.conf; keep the existing one on re-runs
DBD_CONF=/etc/slurm/slurmdbd.conf
DB_PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
[ -n "$DB_PASS" ] || DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
say "creating database slurm_acct_db and its user (if missing)"
mariadb -u root <<SQL || die "could not create the accounting database (is root's unix_socket login enabled?)"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# --- 4. configuration -------------------------------------------------------------------------
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)   # = free -m's total
REAL_MEM=$(( MEM_MB - 512 ))   # headroom for the daemons; above the real value the node would drain
[ "$REAL_MEM" -gt 1000 ] || die "only ${MEM_MB} MB of memory"
install -d -m 0755 /etc/slurm
install -d -o slurm -g slurm -m 0755 /var/log/slurm /run/slurmdbd
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd

dbd_changed=0
if install_file "$DBD_CONF" 600 slurm:slurm <<EOF; then dbd_changed=1; fi
# written by .ci/slurm_setup.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF

conf_changed=0
if install_file /etc/slurm/slurm.conf 644 root:root <<EOF; then conf_changed=1; fi
# written by .ci/slurm_setup.sh: a single-node test cluster
ClusterName=${CLUSTER}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MinJobAge=300
InactiveLimit=0
KillWait=30
Waittime=0
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
say "slurm.conf: node ${NODE} CPUs=${CPUS} RealMemory=${REAL_MEM} MB, partition ${PARTITION}" \
    "(config changed: slurm.conf=${conf_changed}, slurmdbd.conf=${dbd_changed})"

# --- 5. daemons -------------------------------------------------------------------------------
if [ "$dbd_changed" = 1 ]; then stop /run/slurmdbd/slurmdbd.pid; fi
if [ "$conf_changed" = 1 ]; then stop /run/slurmd.pid; stop /run/slurmctld.pid; fi

if running /run/slurmdbd/slurmdbd.pid; then
    say "slurmdbd already running"
else
    say "starting slurmdbd"
    slurmdbd || die "slurmdbd did not start (see /var/log/slurm/slurmdbd.log)"
fi
# the first start creates the tables, which takes a few seconds
wait_for 120 "slurmdbd to answer sacctmgr" timeout 10 sacctmgr -n list cluster

if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
    say "registering cluster ${CLUSTER} in the accounting database"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
fi
# the account the executor plugin guesses from sacct for every user that submits
if [ -z "$(sacctmgr -n -P list account "$CLUSTER" format=account)" ]; then
    sacctmgr -i add account "$CLUSTER" Cluster="$CLUSTER" Description=ci Organization=ci >/dev/null \
        || die "sacctmgr add account failed"
fi
for u in root ${SUDO_USER:-}; do
    if [ -z "$(sacctmgr -n -P list assoc user="$u" account="$CLUSTER" format=user)" ]; then
        sacctmgr -i add user "$u" Account="$CLUSTER" Cluster="$CLUSTER" >/dev/null \
            || die "sacctmgr add user $u failed"
    fi
done

if running /run/slurmctld.pid; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
wait_for 60 "slurmctld to answer" timeout 10 scontrol ping

if running /run/slurmd.pid; then
    say "slurmd already running"
else
    say "starting slurmd"
    slurmd -N "$NODE" || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }
state=""
end=$(( $(date +%s) + 90 ))
while :; do
    state=$(node_state)
    case "$state" in
        idle|mixed|allocated) break ;;
        drain*|down*|fail*)   # e.g. left drained by an earlier run with another config
            say "node is ${state}; resuming it"
            scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    [ "$(date +%s)" -lt "$end" ] || die "node ${NODE} not usable after 90 s (state '${state}'; sinfo -R: $(sinfo -h -R))"
    sleep 1
done
say "node ${NODE} is ${state}"
wait_for 60 "sacct to answer" timeout 10 sacct -n -X -a -S now-1hours

# smoke test: one tiny job through the scheduler, then its record in the accounting database
say "smoke job"
jobid=$(timeout 120 sbatch --parsable --wait -J slurm_setup_smoke -t 1 --mem=10 -o /dev/null --wrap true) \
    || die "smoke job did not complete within 120 s"
jobid=${jobid%%;*}
wait_for 60 "sacct to record smoke job ${jobid}" \
    sh -c "sacct -n -X -j ${jobid} -o State | grep -q COMPLETED"
say "smoke job ${jobid} COMPLETED and recorded by sacct"

# --- 6. the Snakemake executor plugin ---------------------------------------------------------
have=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))' 2>/dev/null || true)
if [ "$have" = "$PLUGIN_VERSION" ]; then
    say "snakemake-executor-plugin-slurm ${have} already installed"
else
    say "pip install snakemake-executor-plugin-slurm==${PLUGIN_VERSION}"
    timeout 600 "$PYTHON" -m pip install -q "snakemake-executor-plugin-slurm==${PLUGIN_VERSION}" \
        || die "pip install snakemake-executor-plugin-slurm==${PLUGIN_VERSION} failed"
fi

sinfo
say "SLURM ready: cluster ${CLUSTER}, partition ${PARTITION}, accounting via slurmdbd"
