#!/usr/bin/env bash
# Write Wireshark's per-frame TCP analysis for test captures as TSV goldens, so
# `cargo test` can compare tcplens annotations with an independent analyser
# without needing tshark installed.
#
#   scripts/make-tshark-goldens.sh            # all of testdata/kernel/ and /work/shared/corpus
#   scripts/make-tshark-goldens.sh FILE ...   # only these captures
#
# testdata/kernel/X.pcap      -> testdata/tshark/X.tsv
# $CORPUS/dir/Y.pcap          -> testdata/tshark/corpus/dir/Y.tsv
# Line 1: "# " + first line of `tshark --version`, line 2: "# " + source path and
# options, line 3: field names; then one line per frame (all frames, so
# frame.number equals tcpdump -# numbering). Boolean analysis fields (FT_NONE in
# Wireshark) print 1 when the frame carries that flag and nothing otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
corpus=${CORPUS:-/work/shared/corpus}
out=$repo/testdata/tshark
max_capture_bytes=${MAX_CAPTURE_BYTES:-400000}   # skip bigger corpus files (golden size)
max_tsv_bytes=${MAX_TSV_BYTES:-300000}

command -v tshark >/dev/null || { echo "tshark not installed" >&2; exit 1; }
fields=(frame.number tcp.stream tcp.flags.str tcp.analysis.flags
  tcp.analysis.retransmission tcp.analysis.fast_retransmission tcp.analysis.spurious_retransmission
  tcp.analysis.out_of_order tcp.analysis.lost_segment tcp.analysis.ack_lost_segment
  tcp.analysis.duplicate_ack tcp.analysis.duplicate_ack_num tcp.analysis.duplicate_ack_frame
  tcp.analysis.zero_window tcp.analysis.zero_window_probe tcp.analysis.zero_window_probe_ack
  tcp.analysis.window_update tcp.analysis.window_full tcp.analysis.keep_alive
  tcp.analysis.keep_alive_ack tcp.analysis.reused_ports)
# Fail early if this tshark renamed a field.
known=$(tshark -G fields 2>/dev/null | awk -F'\t' '$1=="F"{print $3}')
for f in "${fields[@]}"; do
  grep -qx "$f" <<<"$known" || { echo "tshark has no field $f" >&2; exit 1; }
done
eargs=()
for f in "${fields[@]}"; do eargs+=(-e "$f"); done
# Fixed analysis options; an empty config dir keeps personal preferences out.
cfg=$(mktemp -d /tmp/tl-tshark-cfg.XXXXXX)
trap 'rm -rf "$cfg"' EXIT
opts=(-o tcp.analyze_sequence_numbers:TRUE -o tcp.relative_sequence_numbers:TRUE
  -o tcp.calculate_timestamps:TRUE -o tcp.check_checksum:FALSE)
version=$(tshark --version 2>/dev/null | head -1)

is_capture() { case $1 in *.pcap|*.pcapng|*.cap|*.trace|*.dmp) return 0;; *) return 1;; esac; }

golden() { # capture destination label
  local src=$1 dst=$2 label=$3 tmp
  mkdir -p "$(dirname "$dst")"
  tmp=$dst.tmp
  {
    echo "# $version"
    echo "# source: $label; tshark -n -T fields -E separator=/t -E occurrence=f ${opts[*]}"
    WIRESHARK_CONFIG_DIR=$cfg timeout 120 tshark -n -r "$src" "${opts[@]}" -T fields \
      -E separator=/t -E header=y -E occurrence=f "${eargs[@]}" 2>/dev/null
  } >"$tmp" || { echo "skip (tshark failed, input damaged?): $label" >&2; rm -f "$tmp"; return 0; }
  if [[ $(stat -c %s "$tmp") -gt $max_tsv_bytes ]]; then
    echo "skip (golden over $max_tsv_bytes bytes): $label" >&2; rm -f "$tmp"; return 0
  fi
  mv "$tmp" "$dst"
  echo "wrote ${dst#"$repo"/}"
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  while IFS= read -r f; do targets+=("$f"); done < <(
    find "$repo/testdata/kernel" "$corpus" -type f 2>/dev/null | sort)
fi
n=0
for f in "${targets[@]}"; do
  is_capture "$f" || continue
  n=$((n + 1)); [[ $n -le 1000 ]] || { echo "more than 1000 captures, stopping" >&2; break; }
  abs=$(realpath "$f")
  name=$(basename "$abs"); name=${name%.*}
  if [[ $abs == "$corpus"/* ]]; then
    rel=${abs#"$corpus"/}
    if [[ $(stat -c %s "$abs") -gt $max_capture_bytes ]]; then
      echo "skip (capture over $max_capture_bytes bytes): corpus/$rel" >&2; continue
    fi
    golden "$abs" "$out/corpus/$rel.tsv" "corpus/$rel"
  else
    golden "$abs" "$out/$name.tsv" "${abs#"$repo"/}"
  fi
done
