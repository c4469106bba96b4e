#!/usr/bin/env bash
# Starts a real one-node Slurm cluster (Debian's slurm-wlm 22.05 + munge) on this machine, for
# tests of `hypersweep submit`. Needs root and Debian/Ubuntu; no systemd needed: the daemons are
# started directly (CI containers and VMs often have no init system). Idempotent: installs only
# what is missing, rewrites slurm.conf only when it differs, starts only daemons not running.
#
#   sudo scripts/slurm-local.sh     # then: sbatch --wrap hostname; squeue; sinfo
set -euo pipefail
die() { echo "slurm-local: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
# A daemon just killed can linger as a zombie for a moment (pgrep would count it): skip state Z.
running() { ps -C "$1" -o stat= | grep -qv '^Z'; }
started=()

# 1. Packages. A fresh image may have no apt lists yet: update only if the first try fails.
if ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurm-wlm munge >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; } ||
    die "apt-get install slurm-wlm munge failed"
fi

# 2. munge: every Slurm RPC is signed with this key; munged refuses to run with a key or
# directories not owned by its user, so fix ownership every time (cheap, and repairs old runs).
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key && chmod 0755 /run/munge
if ! running munged; then
  runuser -u munge -- munged || die "munged failed to start (see /var/log/munge/munged.log)"
  started+=(munged)
fi
munge -n | unmunge >/dev/null || die "munge round trip failed: munged is not answering"

# 3. slurm.conf. 127.0.0.1 is given as the address so that it works even where the short
# hostname does not resolve. RealMemory stays below MemTotal: a node that reports less memory
# than configured is drained ("Low RealMemory"). ReturnToService=2 lets it come back by itself.
host=$(hostname -s)
mem_mb=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
conf=$(cat <<EOF
ClusterName=local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=5
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  # Node definitions are read only at startup: restart daemons that run with the old file.
  for d in slurmd slurmctld; do
    if running "$d"; then kill "$(cat /run/$d.pid)"; for _ in $(seq 20); do running "$d" || break; sleep 0.5; done; fi
  done
fi

# 4. Daemons: both fork into the background and find /etc/slurm/slurm.conf by default.
for d in slurmctld slurmd; do
  if ! running "$d"; then
    "$d" || die "$d failed to start; tail of /var/log/slurm/$d.log:$(echo; tail -n 20 /var/log/slurm/$d.log 2>/dev/null)"
    started+=("$d")
  fi
done

# 5. Wait (30 s at most) until the node takes jobs; resume it if it came up down or drained.
state=""
for _ in $(seq 30); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mix|alloc|comp) break ;;
    down*|drain*|drng*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
case "$state" in idle|mix|alloc|comp) ;; *)
  die "node $host is '${state:-unknown}' after 30 s; see /var/log/slurm/slurmctld.log and slurmd.log" ;;
esac

echo "slurm-local: node $host is $state (partition debug); started now: ${started[*]:-nothing, all running}"
echo "to stop: kill \$(cat /run/slurmd.pid) \$(cat /run/slurmctld.pid) \$(cat /run/munge/munged.pid)"
echo "     or: pkill -x slurmd; pkill -x slurmctld; pkill -x munged"
