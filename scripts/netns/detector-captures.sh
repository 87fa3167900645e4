#!/usr/bin/env bash
# Regenerate testdata/kernel/detect/*.pcap and *.truth.json (SYN flood, SYN
# cookies, TIME_WAIT, busy negative control) from the running kernel.
# Needs root (network namespaces, nftables, tcpdump). Traffic stays inside the
# namespaces tl-dcli, tl-dsrv, tl-drtr (10.231.0.0/16, fd00:231::/48) that this
# script creates and always deletes again, also on failure or interrupt.
# Spoofed SYN sources are in 10.231.1.128/25 only.
# Usage: scripts/netns/detector-captures.sh [OUTDIR] [scenario ...]   (--list lists them)
set -euo pipefail
DRIVER=detector_captures.py
OUT_REL=testdata/kernel/detect
TOOLS="ip nft tcpdump ss nstat sysctl python3 timeout"
NAMESPACES="tl-dcli tl-dsrv tl-drtr"
LIMIT_S=900 # each scenario takes 5-25 s
source "$(dirname "$0")/run-captures.sh"
