#!/usr/bin/env bash
# slurm/cluster.sh -- a real single-machine Slurm (22.05, Debian 12) cluster for
# ghostsweep development and tests.
#
#   slurm/cluster.sh start          install (apt) if needed, configure, start; idempotent
#   slurm/cluster.sh stop [--purge] stop everything (by pid); --purge also deletes $PREFIX
#   slurm/cluster.sh status         report health; exit 0 if healthy, 1 otherwise
#   slurm/cluster.sh env            print "export SLURM_CONF=..."  (eval "$(slurm/cluster.sh env)")
#
# Daemons: munged, MariaDB + slurmdbd (accounting, so `sacct` works -- submitit polls
# sacct; without it a cancelled job leaves job.result() waiting forever), slurmctld,
# and N slurmd "nodes".  Everything (config, munge key, state, logs, pid files, the
# MariaDB datadir and sockets) lives under $PREFIX; nothing is written to /etc except
# by apt-get (and by GHOSTSWEEP_SLURM_HOSTS_MODE=etc); systemd is not used.
# Must run as root (slurmd/slurmstepd switch to the job's user).
#
# Knobs (environment variables; see slurm/README.md):
#   GHOSTSWEEP_SLURM_PREFIX          where everything lives              [/tmp/ghostsweep-slurm]
#   GHOSTSWEEP_SLURM_NODES           number of slurmd nodes              [1]
#                                    1 -> one node named $(hostname -s); N>1 -> node1..nodeN
#   GHOSTSWEEP_SLURM_CPUS            CPUs advertised per node            [max(nproc, 4)]
#   GHOSTSWEEP_SLURM_MEM_MB          RealMemory advertised per node (MB) [8192]
#   GHOSTSWEEP_SLURM_MAX_ARRAY_SIZE  MaxArraySize (max array index + 1)  [1001]
#   GHOSTSWEEP_SLURM_CRED_EXPIRE     munge cred_expire: a requeued job waits this long [10]
#   GHOSTSWEEP_SLURM_PORT_BASE       slurmctld port; slurmd +1, slurmdbd +2, MariaDB +3,
#                                    multi-node slurmd ports +11..+10+N  [6817]
#   GHOSTSWEEP_SLURM_HOSTS_MODE      make node1..N resolvable (N>1): auto|mountns|etc|none [auto]
#   GHOSTSWEEP_SLURM_INSTALL         1 = apt-get install missing packages [1]
#   GHOSTSWEEP_SLURM_TIMEOUT         seconds to wait for readiness        [90]
#   GHOSTSWEEP_SLURM_GPUS            stand-in GPUs per node (gres/gpu:N)  [0]
#                                    character devices $PREFIX/dev/<node>/nvidia0..N-1 (major 195) that
#                                    Slurm allocates, setting CUDA_VISIBLE_DEVICES / SLURM_*_GPUS per job
#                                    and step as on a GPU cluster; no CUDA behind them (torch uses the CPU)
#   GHOSTSWEEP_SLURM_ACCOUNTING      slurmdbd | none                      [slurmdbd]
#                                    none: no MariaDB/slurmdbd, `sacct` fails (a cluster without accounting)
#
# Pitfalls baked in here (each one cost somebody time):
#  * A requeued job is held until the launch credential of its previous run expires:
#    munge `cred_expire` (default 120 s).  We set 10 s so requeue tests are fast.
#  * The slurmdbd connection does NOT use AuthInfo's socket=; slurmctld takes the munge
#    socket for it from AccountingStoragePass.  slurmdbd refuses a world-readable
#    slurmdbd.conf (mode 600).  The munge socket dir must be world-x for non-root users.
#  * Stop slurmd before slurmctld: a slurmd that cannot reach slurmctld lingers on SIGTERM.
#    Orphaned slurmstepd processes block SIGTERM and need SIGKILL.
#  * Without cgroups (containers) use proctrack/linuxproc + task/none.
#  * SlurmdParameters=config_overrides lets us advertise more CPUs/memory than the
#    machine has (oversubscription is fine for tests); without it nodes go INVAL.
#  * submitit treats NODE_FAIL as final although Slurm requeues the job; and when
#    timeout_min is short, every USR2 (even `scancel --signal=USR2`) is taken as a
#    timeout rather than a preemption.  See slurm/README.md.
#  * MariaDB listens on 127.0.0.1:$PORT_BASE+3 (never 3306: no clash with a system MariaDB);
#    slurmdbd's mysql plugin cannot be pointed at a unix socket.
set -euo pipefail

PREFIX=${GHOSTSWEEP_SLURM_PREFIX:-/tmp/ghostsweep-slurm}
NODES=${GHOSTSWEEP_SLURM_NODES:-1}
_nproc=$(nproc)
CPUS=${GHOSTSWEEP_SLURM_CPUS:-$(( _nproc > 4 ? _nproc : 4 ))}
MEM_MB=${GHOSTSWEEP_SLURM_MEM_MB:-8192}
MAX_ARRAY_SIZE=${GHOSTSWEEP_SLURM_MAX_ARRAY_SIZE:-1001}
CRED_EXPIRE=${GHOSTSWEEP_SLURM_CRED_EXPIRE:-10}
PORT_BASE=${GHOSTSWEEP_SLURM_PORT_BASE:-6817}
HOSTS_MODE=${GHOSTSWEEP_SLURM_HOSTS_MODE:-auto}
INSTALL=${GHOSTSWEEP_SLURM_INSTALL:-1}
TIMEOUT=${GHOSTSWEEP_SLURM_TIMEOUT:-90}
GPUS=${GHOSTSWEEP_SLURM_GPUS:-0}
ACCOUNTING=${GHOSTSWEEP_SLURM_ACCOUNTING:-slurmdbd}
CLUSTER=ghostsweep
PARTITION=debug

CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))

CONF=$PREFIX/etc/slurm.conf
MUNGE_SOCK=$PREFIX/munge-run/munge.socket
DB_SOCK=$PREFIX/mysql-run/mysqld.sock
HOSTS_FILE=$PREFIX/etc/hosts
PKGS="slurmctld slurmd slurm-client munge"
[ "$ACCOUNTING" = slurmdbd ] && PKGS="$PKGS slurmdbd mariadb-server"
GRES_CONF=$PREFIX/etc/gres.conf

T0=$(date +%s%N)
log() {
  local ms=$(( ($(date +%s%N) - T0) / 1000000 ))
  printf '[cluster.sh +%d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() { log "ERROR: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root: slurmd/slurmstepd need root"; }

validate() {
  [[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_NODES must be a positive integer (got '$NODES')"
  [[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_CPUS must be a positive integer (got '$CPUS')"
  [[ "$MEM_MB" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_MEM_MB must be a positive integer (got '$MEM_MB')"
  [[ "$MAX_ARRAY_SIZE" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_MAX_ARRAY_SIZE must be a positive integer"
  [[ "$CRED_EXPIRE" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_CRED_EXPIRE must be a positive integer"
  [[ "$PORT_BASE" =~ ^[1-9][0-9]*$ ]] || die "GHOSTSWEEP_SLURM_PORT_BASE must be a port number"
  case "$HOSTS_MODE" in auto|mountns|etc|none) ;; *) die "GHOSTSWEEP_SLURM_HOSTS_MODE must be auto|mountns|etc|none";; esac
  { [[ "$GPUS" =~ ^[0-9]+$ ]] && [ "$GPUS" -le 64 ]; } || die "GHOSTSWEEP_SLURM_GPUS must be an integer in [0, 64] (got '$GPUS')"
  case "$ACCOUNTING" in slurmdbd|none) ;; *) die "GHOSTSWEEP_SLURM_ACCOUNTING must be slurmdbd or none (got '$ACCOUNTING')";; esac
  case "$PREFIX" in /*) ;; *) die "GHOSTSWEEP_SLURM_PREFIX must be an absolute path";; esac
  [ "$PREFIX" != / ] || die "GHOSTSWEEP_SLURM_PREFIX must not be /"
}

node_names() {
  if [ "$NODES" = 1 ]; then hostname -s; else seq -f 'node%g' 1 "$NODES"; fi
}

# argv0 PID -> argv[0] of PID, empty if gone
argv0() { { tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | head -n1; }
# pid_alive PIDFILE NAME -> the pid in PIDFILE runs and its argv[0] contains NAME
pid_alive() {
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(argv0 "$pid")" == *"$name"* ]]
}
# wait_for SECONDS WHAT CMD... -> poll CMD every 0.2 s
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${secs}s waiting for: $what (logs: $PREFIX/log/)"
    sleep 0.2
  done
  log "ready: $what"
}

munge_ok()   { munge -S "$MUNGE_SOCK" -n 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1; }
mariadb_ok() { mariadb-admin --no-defaults --socket="$DB_SOCK" ping >/dev/null 2>&1; }
ctld_ok()    { SLURM_CONF=$CONF timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# ============================================================== stop
stop_pid() {   # stop_pid PID NAME GRACE: SIGTERM, wait, then SIGKILL -- only if argv[0] matches NAME
  local pid=$1 name=$2 grace=$3 i
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ "$(argv0 "$pid")" == *"$name"* ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 5; i++)); do
    [[ "$(argv0 "$pid")" == *"$name"* ]] || { log "stopped $name ($pid)"; return 0; }
    sleep 0.2
  done
  log "$name ($pid) ignored SIGTERM for ${grace}s -> SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}
stop_pidfile() { local f=$1; if [ -s "$f" ]; then stop_pid "$(cat "$f")" "$2" "$3"; fi; rm -f "$f"; }
children_of() {  # direct children of PID
  local p=$1 s
  for s in /proc/[0-9]*/stat; do
    awk -v p="$p" '{ sub(/^.*\) /, ""); if ($2 == p) { split(FILENAME, a, "/"); print a[3] } }' "$s" 2>/dev/null
  done
}

stop_slurm() {   # slurmd(s), leftovers, slurmctld, slurmdbd
  local f jobs ctld kids k d pid ancestors p env
  export SLURM_CONF=$CONF
  # 1. cancel jobs while slurmctld is still up so slurmstepds exit cleanly
  if [ -f "$CONF" ] && ctld_ok; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// }" ]; then
      log "cancelling jobs: $jobs"
      timeout 10 scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 75); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  # 2. slurmd(s) before slurmctld
  for f in "$PREFIX"/run/slurmd-*.pid; do [ -e "$f" ] && stop_pidfile "$f" slurmd 10; done
  # 3. leftovers: orphaned slurmstepd (cwd under $PREFIX, block SIGTERM) and job
  #    processes (slurmstepd puts SLURM_CONF=<our conf> + SLURM_JOB_ID in their env).
  #    Never ourselves or our ancestors.
  ancestors=" "; p=$$
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    ancestors="$ancestors$p "
    p=$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$p/stat" 2>/dev/null)
  done
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    case "$ancestors" in *" $pid "*) continue;; esac
    case "$(argv0 "$pid")" in
      *slurmstepd*)
        case "$(readlink "$d/cwd" 2>/dev/null)" in
          "$PREFIX"|"$PREFIX"/*) log "killing orphan slurmstepd $pid"; kill -KILL "$pid" 2>/dev/null || true;;
        esac ;;
      *)
        env=$( { tr '\0' '\n' < "$d/environ"; } 2>/dev/null ) || continue
        if grep -Fqx "SLURM_CONF=$CONF" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; then
          log "killing leftover job process $pid ($(argv0 "$pid"))"; kill -KILL "$pid" 2>/dev/null || true
        fi ;;
    esac
  done
  # 4. slurmctld (+ its slurmscriptd child), slurmdbd
  if [ -s "$PREFIX/run/slurmctld.pid" ]; then
    ctld=$(cat "$PREFIX/run/slurmctld.pid")
    kids=""; [[ "$ctld" =~ ^[0-9]+$ ]] && kids=$(children_of "$ctld")
    stop_pidfile "$PREFIX/run/slurmctld.pid" slurmctld 15
    for k in $kids; do stop_pid "$k" slurm 2; done
  fi
  stop_pidfile "$PREFIX/run/slurmdbd.pid" slurmdbd 15
  # 5. GHOSTSWEEP_SLURM_HOSTS_MODE=etc leaves a tagged line in /etc/hosts
  if grep -q "# ghostsweep-slurm $PREFIX\$" /etc/hosts 2>/dev/null; then
    local tmp; tmp=$(grep -v "# ghostsweep-slurm $PREFIX\$" /etc/hosts)
    printf '%s\n' "$tmp" > /etc/hosts   # rewrite in place (/etc/hosts may be a bind mount)
    log "removed node names from /etc/hosts"
  fi
}

cmd_stop() {
  local purge=0 a
  for a in "$@"; do
    case "$a" in --purge) purge=1;; *) die "stop: unknown argument '$a' (only --purge)";; esac
  done
  need_root
  if [ -d "$PREFIX" ]; then
    stop_slurm
    stop_pidfile "$PREFIX/mysql-run/mariadbd.pid" mariadbd 60   # graceful: flushes InnoDB
    stop_pidfile "$PREFIX/munge-run/munged.pid" munged 10
  fi
  if [ "$purge" = 1 ]; then
    log "removing $PREFIX"
    rm -rf -- "$PREFIX"
  fi
  log "stopped"
}

# ============================================================== start
install_packages() {
  local missing="" p
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  [ "$INSTALL" = 1 ] || die "missing packages:$missing (allow installing with GHOSTSWEEP_SLURM_INSTALL=1)"
  log "apt-get install --no-install-recommends$missing"
  local aptlog; aptlog=$(mktemp /tmp/ghostsweep-slurm-apt.XXXXXX)
  export DEBIAN_FRONTEND=noninteractive
  # the packaged services are never used (no systemd here; we start our own daemons)
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$aptlog" 2>&1 \
    || { cat "$aptlog" >&2; die "apt-get install failed"; }
  rm -f "$aptlog"
  log "installed: $(dpkg-query -W -f='${Package}=${Version} ' slurmctld munge mariadb-server 2>/dev/null)"
}

start_munge() {
  if [ ! -s "$PREFIX/munge/munge.key" ]; then
    dd if=/dev/urandom of="$PREFIX/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$PREFIX/munge/munge.key"
  fi
  munge_ok && return 0
  pid_alive "$PREFIX/munge-run/munged.pid" munged && stop_pidfile "$PREFIX/munge-run/munged.pid" munged 5
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
  munged --key-file="$PREFIX/munge/munge.key" --socket="$MUNGE_SOCK" \
         --pid-file="$PREFIX/munge-run/munged.pid" --log-file="$PREFIX/log/munged.log" \
         --seed-file="$PREFIX/munge/munged.seed"
  wait_for 20 "munged" munge_ok
}

start_mariadb() {
  if [ ! -d "$PREFIX/mysql/mysql" ]; then
    log "initialising MariaDB datadir"
    mariadb-install-db --no-defaults --user=root --datadir="$PREFIX/mysql" \
      --auth-root-authentication-method=socket --skip-test-db >"$PREFIX/log/mariadb-install.log" 2>&1 \
      || { cat "$PREFIX/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  if ! mariadb_ok; then
    pid_alive "$PREFIX/mysql-run/mariadbd.pid" mariadbd && stop_pidfile "$PREFIX/mysql-run/mariadbd.pid" mariadbd 30
    setsid nohup mariadbd --no-defaults --user=root --datadir="$PREFIX/mysql" --socket="$DB_SOCK" \
      --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$PREFIX/mysql-run/mariadbd.pid" \
      --log-error="$PREFIX/log/mariadbd.log" --innodb-buffer-pool-size=64M \
      --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for 60 "mariadbd" mariadb_ok
  fi
  mariadb --no-defaults --socket="$DB_SOCK" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    FLUSH PRIVILEGES;"
}

write_slurmdbd_conf() {   # -> prints path of a new candidate file
  local f; f=$(mktemp "$PREFIX/etc/.slurmdbd.conf.XXXXXX")
  chmod 600 "$f"   # slurmdbd refuses a world-readable file (it holds the DB password)
  cat > "$f" <<EOF
# generated by ghostsweep slurm/cluster.sh -- edits are overwritten
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$PREFIX/log/slurmdbd.log
PidFile=$PREFIX/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  echo "$f"
}

write_slurm_conf() {   # -> prints path of a new candidate file
  local f n i=0 port
  f=$(mktemp "$PREFIX/etc/.slurm.conf.XXXXXX")
  {
  cat <<EOF
# generated by ghostsweep slurm/cluster.sh -- edits are overwritten
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# socket=: our private munged.  cred_expire: a requeued job waits this long (default 120 s)
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$PREFIX/state/ctld
SlurmdSpoolDir=$PREFIX/state/slurmd/%n
SlurmctldPidFile=$PREFIX/run/slurmctld.pid
SlurmdPidFile=$PREFIX/run/slurmd-%n.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd: /proc based process tracking
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
MpiDefault=none
# advertise CPUs/RealMemory below even if the machine has fewer (oversubscription for tests)
SlurmdParameters=config_overrides
SelectType=select/cons_tres
# CPUs are the only consumable: memory requests are checked against RealMemory but do
# not limit how many jobs share a node (memory is not enforced without cgroups anyway)
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
MaxArraySize=$MAX_ARRAY_SIZE
MaxJobCount=100000
JobRequeue=1
ReturnToService=1
KillWait=5
MinJobAge=300
SlurmdTimeout=30
InactiveLimit=0
Waittime=0
JobCompType=jobcomp/none
EOF
  if [ "$ACCOUNTING" = slurmdbd ]; then
    cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the slurmdbd connection does NOT use AuthInfo's socket=; it takes the munge socket from here
AccountingStoragePass=$MUNGE_SOCK
EOF
  else
    echo "AccountingStorageType=accounting_storage/none"
  fi
  if [ "$GPUS" -gt 0 ]; then echo "GresTypes=gpu"; fi
  for n in $(node_names); do
    i=$((i + 1))
    if [ "$NODES" = 1 ]; then port=""; else port="Port=$((PORT_BASE + 10 + i))"; fi
    gres=""; [ "$GPUS" -gt 0 ] && gres="Gres=gpu:$GPUS "
    echo "NodeName=$n NodeAddr=127.0.0.1 $port CPUs=$CPUS RealMemory=$MEM_MB ${gres}State=UNKNOWN"
  done
  echo "PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$f"
  chmod 644 "$f"
  echo "$f"
}

write_gres_conf() {   # -> prints path of a new candidate gres.conf (empty without GPUs)
  local f n k
  f=$(mktemp "$PREFIX/etc/.gres.conf.XXXXXX")
  if [ "$GPUS" -gt 0 ]; then
    echo "# generated by ghostsweep slurm/cluster.sh: stand-in GPUs (character devices, no CUDA behind them)" > "$f"
    for n in $(node_names); do
      mkdir -p "$PREFIX/dev/$n"
      for ((k = 0; k < GPUS; k++)); do
        [ -c "$PREFIX/dev/$n/nvidia$k" ] || mknod "$PREFIX/dev/$n/nvidia$k" c 195 "$k"
      done
      echo "NodeName=$n Name=gpu File=$PREFIX/dev/$n/nvidia[0-$((GPUS - 1))]" >> "$f"
    done
  fi
  chmod 644 "$f"
  echo "$f"
}

# node_state_ok -> every configured node is idle/mixed/allocated (no DOWN/DRAIN/INVAL/...)
nodes_ok() {
  local s n
  s=$(SLURM_CONF=$CONF timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null) || return 1
  for n in $(node_names); do
    grep -qE "^$n (idle|mixed|allocated|completing)$" <<<"$s" || return 1
  done
}

cmd_start() {
  need_root
  install_packages
  mkdir -p "$PREFIX"/{etc,log,run,state/ctld,state/slurmd,munge,munge-run,mysql-run}
  chmod 755 "$PREFIX" "$PREFIX/munge-run"   # munge socket dir: world-x for non-root job users
  chmod 700 "$PREFIX/munge"
  getent hosts "$(hostname -s)" >/dev/null \
    || log "WARNING: hostname '$(hostname -s)' does not resolve; add it to /etc/hosts (torch MASTER_ADDR uses it)"

  start_munge
  if [ "$ACCOUNTING" = slurmdbd ]; then start_mariadb; fi

  # config: restart the Slurm daemons only if a generated file changed (no gres.conf = an empty one)
  local new_dbd new_conf new_gres old_gres=/dev/null restart=0
  new_dbd=$(write_slurmdbd_conf)
  new_conf=$(write_slurm_conf)
  new_gres=$(write_gres_conf)
  [ -f "$GRES_CONF" ] && old_gres=$GRES_CONF
  if ! cmp -s "$new_dbd" "$PREFIX/etc/slurmdbd.conf" || ! cmp -s "$new_conf" "$CONF" || ! cmp -s "$new_gres" "$old_gres"; then
    if [ -f "$CONF" ]; then restart=1; fi
  fi
  if [ "$restart" = 1 ]; then
    log "configuration changed -> restarting Slurm daemons (running jobs are cancelled)"
    diff "$CONF" "$new_conf" | grep '^[<>]' | sed 's/^/    /' >&2 || true
    stop_slurm
  fi
  mv -f "$new_dbd" "$PREFIX/etc/slurmdbd.conf"
  mv -f "$new_conf" "$CONF"
  if [ -s "$new_gres" ]; then mv -f "$new_gres" "$GRES_CONF"; else rm -f "$new_gres" "$GRES_CONF"; fi
  echo "export SLURM_CONF=$CONF" > "$PREFIX/env.sh"
  export SLURM_CONF=$CONF

  # slurmdbd (with accounting)
  if [ "$ACCOUNTING" = slurmdbd ] && ! pid_alive "$PREFIX/run/slurmdbd.pid" slurmdbd; then
    slurmdbd
    wait_for 60 "slurmdbd" sacctmgr -n list cluster
  fi
  if [ "$ACCOUNTING" = slurmdbd ] && ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "registered cluster '$CLUSTER' in slurmdbd"
  fi
  if [ "$ACCOUNTING" = none ]; then   # switched off: nothing of a previous run's accounting keeps running
    stop_pidfile "$PREFIX/run/slurmdbd.pid" slurmdbd 15
    stop_pidfile "$PREFIX/mysql-run/mariadbd.pid" mariadbd 60
  fi

  # slurmctld
  if ! pid_alive "$PREFIX/run/slurmctld.pid" slurmctld; then
    slurmctld
    wait_for 60 "slurmctld" ctld_ok
  fi

  # slurmd(s); with N>1 the names node1..N must resolve for the jobs (torch MASTER_ADDR)
  local need_hosts=0 mode=$HOSTS_MODE n names
  names=$(node_names | tr '\n' ' ')
  if [ "$NODES" != 1 ]; then
    for n in $names; do getent hosts "$n" >/dev/null || need_hosts=1; done
  fi
  if [ "$need_hosts" = 1 ] && [ "$mode" = auto ]; then
    if unshare --mount --propagation private true 2>/dev/null; then mode=mountns; else mode=etc; fi
  fi
  if [ "$need_hosts" = 1 ]; then
    case "$mode" in
      mountns) { grep -v "# ghostsweep-slurm " /etc/hosts; echo "127.0.0.1 $names"; } > "$HOSTS_FILE" ;;
      etc)     echo "127.0.0.1 $names # ghostsweep-slurm $PREFIX" >> /etc/hosts; need_hosts=0
               log "added '127.0.0.1 $names' to /etc/hosts (removed by stop)" ;;
      none)    log "WARNING: node names $names do not resolve (torch MASTER_ADDR will fail)"; need_hosts=0 ;;
    esac
  fi
  for n in $names; do
    mkdir -p "$PREFIX/state/slurmd/$n"
    pid_alive "$PREFIX/run/slurmd-$n.pid" slurmd && continue
    if [ "$need_hosts" = 1 ]; then
      # private mount namespace: processes on this node see $HOSTS_FILE as /etc/hosts
      unshare --mount --propagation private sh -c "mount --bind '$HOSTS_FILE' /etc/hosts && exec slurmd -N '$n'"
    else
      slurmd -N "$n"
    fi
  done

  # readiness: nodes idle, sacct answers, one real job step end to end
  wait_for "$TIMEOUT" "$NODES node(s) up: $names" nodes_ok
  if [ "$ACCOUNTING" = slurmdbd ]; then wait_for 30 "sacct" sacct -n -X -S now; fi
  local out
  out=$(cd "$PREFIX" && timeout 60 srun -N1 -n1 -t 1 -J cluster-smoke printenv SLURMD_NODENAME 2>&1) \
    || die "smoke test 'srun' failed: $out"
  log "smoke test srun OK (ran on $out)"
  log "cluster ready: $NODES node(s) x $CPUS CPUs, ${MEM_MB} MB, $GPUS stand-in GPU(s), partition '$PARTITION'," \
      "MaxArraySize=$MAX_ARRAY_SIZE, accounting $ACCOUNTING"
  log "use:  source $PREFIX/env.sh    (export SLURM_CONF=$CONF)"
}

# ============================================================== status
cmd_status() {
  local ok=0 n what
  check() { what=$1; shift; if "$@"; then echo "  ok    $what"; else echo "  FAIL  $what"; ok=1; fi; }
  echo "ghostsweep slurm cluster at $PREFIX"
  if [ ! -f "$CONF" ]; then echo "  not configured (run: slurm/cluster.sh start)"; return 1; fi
  export SLURM_CONF=$CONF
  check "munged"    munge_ok
  # accounting from the running config (the env knob may differ from what is running)
  local accounting=none
  grep -qx "AccountingStorageType=accounting_storage/slurmdbd" "$CONF" && accounting=slurmdbd
  if [ "$accounting" = slurmdbd ]; then
    check "mariadbd"  mariadb_ok
    check "slurmdbd"  pid_alive "$PREFIX/run/slurmdbd.pid" slurmdbd
  else
    echo "  --    accounting off (no slurmdbd; sacct fails by design)"
  fi
  check "slurmctld" ctld_ok
  # node names from the running config (the env knobs may differ from what is running)
  local conf_nodes
  conf_nodes=$(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$CONF")
  for n in $conf_nodes; do check "slurmd $n" pid_alive "$PREFIX/run/slurmd-$n.pid" slurmd; done
  if ctld_ok; then
    local s; s=$(timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null || true)
    for n in $conf_nodes; do
      check "node $n state: $(awk -v n="$n" '$1 == n { print $2 }' <<<"$s")" \
        grep -qE "^$n (idle|mixed|allocated|completing)$" <<<"$s"
    done
    if [ "$accounting" = slurmdbd ]; then check "sacct" eval "timeout 10 sacct -n -X -S now >/dev/null 2>&1"; fi
  fi
  if [ "$ok" = 0 ]; then echo "UP   (source $PREFIX/env.sh)"; else echo "DOWN"; fi
  return "$ok"
}

cmd_env() { echo "export SLURM_CONF=$CONF"; }

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

validate
case "${1:-}" in
  start)  shift; [ $# = 0 ] || die "start takes no arguments"; cmd_start ;;
  stop)   shift; cmd_stop "$@" ;;
  status) shift; cmd_status ;;
  env)    shift; cmd_env ;;
  *)      usage ;;
esac
