#!/usr/bin/env bash
# Regenerate testdata/kernel/detect/*.pcap and *.truth.json (SYN flood, SYN
# cookies, TIME_WAIT, busy negative control) from the running kernel.
# Needs root (network namespaces, nftables, tcpdump). Traffic stays inside the
# namespaces tl-dcli, tl-dsrv, tl-drtr (10.231.0.0/16, fd00:231::/48) that this
# script creates and always deletes again, also on failure or interrupt.
# Spoofed SYN sources are in 10.231.1.128/25 only.
# Usage: scripts/netns/detector-captures.sh [OUTDIR] [scenario ...]   (--list lists them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/testdata/kernel/detect
if [[ $# -gt 0 && $1 != --list && ! $1 =~ ^[a-z0-9_]+$ ]]; then out=$1; shift; fi
if [[ ${1:-} == --list ]]; then exec python3 "$here/detector_captures.py" --out "$out" --list; fi
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 1; }
for t in ip nft tcpdump ss nstat sysctl python3 timeout; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
for ns in tl-dcli tl-dsrv tl-drtr; do
  if ip netns list | grep -qw "$ns"; then echo "namespace $ns already exists (another run?)" >&2; exit 1; fi
done
pidfile=$(mktemp /tmp/tl-captures.XXXXXX)
child=
cleanup() {
  local pid i
  # Interrupt the driver first so it stops its captures and deletes partial files.
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -INT "$child" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null || true
  fi
  # Stop only capture processes this run started (pids recorded by the driver).
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] && kill -INT "$pid" 2>/dev/null || true
  done <"$pidfile"
  for ns in tl-dcli tl-dsrv tl-drtr; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "$pidfile" "$out"/*.stderr "$out"/*.all
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"
# The whole run is bounded; each scenario takes 5-25 s.
# Run in the background and wait, so a signal to this script acts at once.
timeout -s INT 900 python3 "$here/detector_captures.py" --out "$out" --pidfile "$pidfile" "$@" &
child=$!
wait "$child"
