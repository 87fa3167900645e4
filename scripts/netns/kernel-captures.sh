#!/usr/bin/env bash
# Regenerate testdata/kernel/*.pcap and *.truth.json from the running kernel.
# Needs root (network namespaces, nftables, tcpdump). Traffic stays inside the
# namespaces tl-cli, tl-srv, tl-rtr (10.231.0.0/16, fd00:231::/48) that this
# script creates and always deletes again, also on failure or interrupt.
# Usage: scripts/netns/kernel-captures.sh [OUTDIR] [scenario ...]   (--list lists them)
set -euo pipefail
DRIVER=kernel_captures.py
OUT_REL=testdata/kernel
TOOLS="ip nft tcpdump dumpcap capinfos ss nstat sysctl python3 timeout"
NAMESPACES="tl-cli tl-srv tl-rtr"
LIMIT_S=600 # each scenario takes a few seconds
source "$(dirname "$0")/run-captures.sh"
