#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1 for the tests (Debian's slurm-wlm, slurmdbd, munge and
# mariadb-server, run as the current user, every file under one directory):
#   scripts/slurm.sh start DIR   bring it up; prints `export SLURM_CONF=...` for the caller to eval
#   scripts/slurm.sh stop DIR    stop slurmd, slurmctld, slurmdbd, MariaDB and munged by their PIDs
# Nothing listens beyond loopback: CommunicationParameters=NoCtldInAddrAny,NoInAddrAny in slurm.conf,
# NoInAddrAny in slurmdbd.conf (DbdAddr alone still binds every address), MariaDB bound to
# 127.0.0.1; munged has a socket of its own (not /run/munge). Accounting is
# on (slurmdbd on MariaDB): submitit reads job states with sacct, and without it a cancelled job is
# never seen to end (FACTS.md).
set -euo pipefail

cmd=${1:?usage: slurm.sh start|stop DIR}
dir=${2:?usage: slurm.sh start|stop DIR}
PATH="$PATH:/usr/sbin"

stop() {
  local name pid
  # jobs still running (a test that failed mid-job) end first: their slurmstepd would outlive slurmd
  if [ -f "$dir/slurmctld.pid" ] && [ -f "$dir/slurm.conf" ]; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
    # a stale pid file names a PID that may belong to another process by now: only the daemon's
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$name"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

fail() {
  echo "slurm.sh: $1; logs in $dir/log" >&2
  stop
  exit 1
}

# wait up to $1 seconds for the command after it to succeed
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "slurm.sh: unknown command $cmd (start or stop)" >&2; exit 2 ;;
esac

for tool in munged mungekey slurmctld slurmd slurmdbd sinfo mariadbd mariadb-install-db mariadb; do
  command -v "$tool" >/dev/null \
    || { echo "slurm.sh: $tool not found (apt-get install slurm-wlm slurmdbd munge mariadb-server)" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop  # what an earlier start in this directory left
trap 'fail "line $LINENO failed"' ERR  # whatever fails from here, nothing is left running
mkdir -p "$dir/munge-socket" "$dir/munge-key" "$dir/state" "$dir/spool" "$dir/log"
# munged refuses a socket directory others cannot enter, and a key in a directory others can read;
# slurm.conf names its socket twice: AuthInfo, and AccountingStoragePass for connections to slurmdbd
chmod 0755 "$dir" "$dir/munge-socket"
chmod 0700 "$dir/munge-key"
[ -f "$dir/munge-key/munge.key" ] || mungekey --create --keyfile="$dir/munge-key/munge.key"
socket="$dir/munge-socket/munge.socket"
munged --force --key-file="$dir/munge-key/munge.key" --socket="$socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge-key/munged.seed"

read -r ctld_port slurmd_port dbd_port db_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
user=$(id -un)
cpus=$(nproc)
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
db_password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

cat >"$dir/slurm.conf" <<EOF
ClusterName=reprotrain-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$socket
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=5
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
(
  umask 077  # it holds the database password; slurmdbd refuses a slurmdbd.conf others can read
  cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$socket
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$dbd_port
CommunicationParameters=NoInAddrAny
SlurmUser=$user
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_password
StorageLoc=slurm_acct_db
EOF
)
export SLURM_CONF="$dir/slurm.conf"

# the accounting database: MariaDB on 127.0.0.1 with its data here, slurmdbd in front of it
if [ ! -d "$dir/mariadb/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$dir/mariadb" --user="$user" --auth-root-authentication-method=socket \
    --skip-test-db >"$dir/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
fi
mariadbd --no-defaults --datadir="$dir/mariadb" --socket="$dir/mariadb.sock" --pid-file="$dir/mariadbd.pid" \
  --bind-address=127.0.0.1 --port="$db_port" --user="$user" --log-error="$dir/log/mariadb.log" \
  --skip-name-resolve --innodb-buffer-pool-size=16M --performance-schema=OFF </dev/null >/dev/null 2>&1 &
# mariadb-install-db gives the OS user it ran as an all-privilege account on the socket
wait_for 30 mariadb --no-defaults -S "$dir/mariadb.sock" -u "$user" -e "select 1" || fail "MariaDB did not start in 30 s"
# the password goes on stdin, not on a command line that every user can read in /proc
mariadb --no-defaults -S "$dir/mariadb.sock" -u "$user" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_password';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
slurmdbd </dev/null >/dev/null 2>&1  # it reads the slurmdbd.conf beside SLURM_CONF
wait_for 30 sacctmgr -n list cluster || fail "slurmdbd did not answer in 30 s"
sacctmgr -i add cluster reprotrain-test >/dev/null 2>&1 || true  # there already after a restart

slurmctld -i </dev/null >/dev/null 2>&1
slurmd -N localhost </dev/null >/dev/null 2>&1
idle() { [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ]; }
wait_for 30 idle || fail "the node did not come up idle in 30 s"
trap - ERR
echo "export SLURM_CONF=$SLURM_CONF"
