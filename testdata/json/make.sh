#!/bin/sh
# Regenerates recipes.pcap (the capture docs/json.md's jq recipes run on) with the project's
# workload generator: a few complete, refused, unanswered and open connections, 4% loss and a
# 30-SYN burst. Same arguments, same bytes (gen_pcap.py 1.0.0).
set -e
cd "$(dirname "$0")"
GEN=${GEN:-../../../shared/tools/gen-pcap/gen_pcap.py}
[ -f "$GEN" ] || GEN=../../../../shared/tools/gen-pcap/gen_pcap.py
python3 "$GEN" --flows 16 --seed 7 --snaplen 128 --loss-rate 0.04 --unanswered-share 0.1 \
    --refused-share 0.08 --open-share 0.1 --chatty-share 0 --clients 5 --servers 3 \
    --syn-flood 30 --out recipes.pcap --truth /dev/null --quiet
