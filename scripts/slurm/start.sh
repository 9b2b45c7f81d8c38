#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost, with accounting (slurmdbd + MariaDB), so that
# `snakemake --profile profiles/slurm` can be tried and tested on one machine.
#
#   sudo bash scripts/slurm/start.sh      # install (apt, when missing) + configure + start
#   sudo bash scripts/slurm/stop.sh       # stop what start.sh started (by pid file)
#
# Needs root (daemons run as root/munge/mysql; config lives at /etc/slurm, the only place the
# plugin's inner srun finds it). Idempotent: a second start with the cluster up returns at once.
# Partitions: `debug` (default) and `gpu`; the node declares one fake GPU (gres gpu:fake:1 backed by
# /dev/null) so that GPU rules can be routed and scheduled without a GPU.
# Environment: BULKFM_SLURM_STATE (pids, logs, spool; default /tmp/bulkfm-slurm),
# BULKFM_SLURM_CPUS (default: nproc; may exceed it), BULKFM_SLURM_MEM_MB (default: MemTotal - 2 GB).
set -euo pipefail

STATE=${BULKFM_SLURM_STATE:-/tmp/bulkfm-slurm}
CPUS=${BULKFM_SLURM_CPUS:-$(nproc)}
MEM_MB=${BULKFM_SLURM_MEM_MB:-$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 2048 ))}
CLUSTER=bulkfm
ACCOUNT=bulkfm
DB_PASS=bulkfm-local   # MariaDB bound to 127.0.0.1 only; a throwaway local database

log() { echo "slurm-start: $*" >&2; }
die() { echo "slurm-start: error: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS WHAT CMD...
  local t=$1 what=$2; shift 2
  for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up in ${t}s (logs: $STATE/*.log, $STATE/mysql/mariadb.log)"
}

[ "$(id -u)" -eq 0 ] || die "must run as root (daemons + /etc/slurm); try: sudo bash $0"

if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
  log "already running ($(sinfo -h -o '%P %T' | tr '\n' ' '))"
  exit 0
fi

# ---------------------------------------------------------------- install (Debian/Ubuntu)
need=()
command -v munged >/dev/null || need+=(munge)
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v slurmdbd >/dev/null || need+=(slurmdbd)
command -v mariadbd >/dev/null || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get: install SLURM + munge + MariaDB yourself"
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key

# ---------------------------------------------------------------- leftovers of an earlier start
bash "$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
# Reused state revives ghost jobs: start clean every time.
rm -rf "$STATE/spool" "$STATE/ctld"
mkdir -p "$STATE/spool" "$STATE/ctld" /etc/slurm
: > "$STATE/started"

# ---------------------------------------------------------------- config
cat > /etc/slurm/slurm.conf <<EOF
# Written by bulkfm scripts/slurm/start.sh: one node (localhost), accounting via slurmdbd.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MpiDefault=none
# Jobs stay visible to squeue for 5 min (the plugin's squeue fallback needs them).
MinJobAge=300
# Without it a job with no --mem takes the whole node.
DefMemPerCPU=1000
# Refuse impossible requests at submission instead of leaving them PENDING forever.
EnforcePartLimits=ALL
ReturnToService=2
# Trust the CPU count declared below even where it exceeds the cores present (test machines
# declare a few more so that small jobs overlap, as they would on a real node).
SlurmdParameters=config_overrides
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmdSpoolDir=$STATE/spool
StateSaveLocation=$STATE/ctld
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
# sacct shows the plugin's --comment (rule_<name>_wildcards_...): which rule a job was.
AccountingStoreFlags=job_comment
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF
# The fake GPU: a device file that exists, so slurmd counts one GPU.
cat > /etc/slurm/gres.conf <<EOF
NodeName=localhost Name=gpu Type=fake File=/dev/null
EOF
cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf

# ---------------------------------------------------------------- munge
mkdir -p /run/munge && chown munge:munge /run/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
  echo munged >> "$STATE/started"
fi
wait_for 120 munge bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- MariaDB
mkdir -p /run/mysqld "$STATE/mysql" && chown mysql:mysql /run/mysqld "$STATE/mysql"
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1
fi
if ! alive "$STATE/mysql/mariadb.pid"; then
  setsid mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 --pid-file="$STATE/mysql/mariadb.pid" \
    --log-error="$STATE/mysql/mariadb.log" </dev/null >/dev/null 2>&1 &
  echo mariadb >> "$STATE/started"
fi
wait_for 180 MariaDB mariadb -e 'SELECT 1'
# A clean accounting database too: job ids restart at 1 with the wiped controller state.
mariadb <<EOF
DROP DATABASE IF EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

# ---------------------------------------------------------------- slurmdbd, accounts
slurmdbd
echo slurmdbd >> "$STATE/started"
wait_for 180 slurmdbd sacctmgr -n list cluster
sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description=bulkfm Organization=bulkfm >/dev/null 2>&1 || true
sacctmgr -i -Q add user root DefaultAccount="$ACCOUNT" Account="$ACCOUNT" >/dev/null 2>&1 || true

# ---------------------------------------------------------------- slurmctld, slurmd
slurmctld
echo slurmctld >> "$STATE/started"
wait_for 180 slurmctld scontrol ping
slurmd -N localhost   # the host name need not be "localhost"
echo slurmd >> "$STATE/started"
wait_for 180 "the node (slurmd)" bash -c "sinfo -h -n localhost -o %T | grep -qE 'idle|mix|alloc'"
wait_for 180 "sacct (accounting)" sacct -n -X -S now
log "up: $(sinfo -h -o '%P %D %T %G' | tr '\n' ';') cpus=$CPUS mem=${MEM_MB}MB state=$STATE"
