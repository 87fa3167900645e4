#!/usr/bin/env bash
# Fuzzing tcplens with cargo-fuzz (needs a nightly toolchain and `cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh seeds                 write seed corpora into fuzz/corpus/TARGET/ (git-ignored)
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target (seeds first if it has none)
#   scripts/fuzz.sh smoke SECONDS         every target for SECONDS each; exit 0 with a message
#                                         when nightly or cargo-fuzz is missing (used by .ci/run)
#   scripts/fuzz.sh list                  the targets
#   scripts/fuzz.sh to-pcap INPUT OUT     a decode_print input as a nanosecond pcap, and the
#                                         tcpdump flags it selects (for testdata/regress/)
#   scripts/fuzz.sh regress-goldens       tcpdump's output for each testdata/regress/LIST entry
#
# Seeds: every capture under testdata/ and the shared corpus (TCPLENS_CORPUS, default
# ../shared/corpus from the crate, as the tests find it) for `capture` and `pipeline`; frames,
# cut into decode_print's input format, for `decode_print`; a few command lines for `cli`;
# three hand-built connections for `analysis`.
# A crash lands in fuzz/artifacts/TARGET/; copy it to testdata/regress/ with a name saying
# what it exercises and add a test (docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(capture decode_print pipeline cli analysis)
# The shared public corpus, found as tests/corpus_diff.rs finds it; seeds skip it if absent.
CORPUS=${TCPLENS_CORPUS:-../shared/corpus}

# libFuzzer options per target: the longest input, and limits that turn a runaway into a
# reported failure (any single allocation over 64 MiB, any input taking over 10 s).
max_len() {
    case $1 in
        capture | pipeline) echo 65536 ;;
        decode_print | analysis) echo 16384 ;;
        cli) echo 512 ;;
    esac
}
LIMITS=(-malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10)

have_tools() {
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
        return 1
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "fuzz: skipped: cargo-fuzz not installed (cargo install cargo-fuzz)"
        return 1
    fi
    if ! command -v python3 >/dev/null; then
        echo "fuzz: skipped: python3 (which writes the seed corpora) not found"
        return 1
    fi
}

seeds() {
    rm -rf fuzz/corpus/{capture,pipeline,decode_print,cli,analysis}
    mkdir -p fuzz/corpus/{capture,pipeline,decode_print,cli,analysis}
    python3 - "$CORPUS" <<'PY'
import hashlib, os, struct, sys

roots = ["testdata/corpus", "testdata/synthetic", "testdata/kernel"]
roots += [sys.argv[1]] if os.path.isdir(sys.argv[1]) else []
MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x34\xcd\xb2\xa1", b"\x0a\x0d\x0d\x0a"}
# decode_print's first byte: the index of the link type in fuzz/src/lib.rs LINKTYPES.
SELECTOR = {0: 0, 1: 1, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}

def frames(b):
    """(linktype, ts_ns, origlen, data) of each packet; stops quietly at damage."""
    if b[:4] == b"\x0a\x0d\x0d\x0a":
        at, e, lts = 0, "<", []
        while at + 12 <= len(b):
            if b[at:at + 4] == b"\x0a\x0d\x0d\x0a":
                e = ">" if b[at + 8:at + 12] == b"\x1a\x2b\x3c\x4d" else "<"
                lts = []
            ty, ln = struct.unpack_from(e + "II", b, at)
            if ln < 12 or at + ln > len(b):
                return
            if ty == 1 and ln >= 20:
                lts.append(struct.unpack_from(e + "H", b, at + 8)[0])
            elif ty == 6 and ln >= 32:
                iface, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", b, at + 8)
                if iface < len(lts) and 28 + cap <= ln:
                    yield lts[iface], ((hi << 32) | lo) * 1000, orig, b[at + 28:at + 28 + cap]
            elif ty == 3 and ln >= 16 and lts:
                orig = struct.unpack_from(e + "I", b, at + 8)[0]
                yield lts[0], 0, orig, b[at + 12:at + 12 + min(orig, ln - 16)]
            at += ln
    else:
        e = ">" if b[0] == 0xa1 else "<"
        nano = b[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        rec = 24 if b[:4] == b"\x34\xcd\xb2\xa1" else 16
        lt = struct.unpack_from(e + "I", b, 20)[0] & 0xffff
        at = 24
        while at + rec <= len(b):
            sec, frac, cap, orig = struct.unpack_from(e + "IIII", b, at)
            if at + rec + cap > len(b):
                return
            yield lt, sec * 10**9 + frac * (1 if nano else 1000), orig, b[at + rec:at + rec + cap]
            at += rec + cap

def write(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join("fuzz/corpus", target, name), "wb") as f:
        f.write(data)

captures = 0
for root in roots:
    for d, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            p = os.path.join(d, n)
            if os.path.getsize(p) > 1 << 20:
                continue
            b = open(p, "rb").read()
            if len(b) < 24 or b[:4] not in MAGICS:
                continue
            captures += 1
            write("capture", b)
            write("pipeline", b)
            by_lt = {}
            try:
                for lt, ts, orig, data in frames(b):
                    by_lt.setdefault(lt, []).append((ts, orig, data))
            except struct.error:
                pass
            for lt, fs in by_lt.items():
                body = b"".join(struct.pack(">HIq", len(data), orig, ts & (2**63 - 1)) + data
                                for ts, orig, data in fs[:16] if len(data) < 65536)
                sel = SELECTOR.get(lt, 8)
                # No flags, and -vvv -e -S --nano -# -tttt: the fuzzer mutates from both.
                write("decode_print", bytes([sel, 0x00, 0]) + body)
                write("decode_print", bytes([sel, 0x3f, 4]) + body)
print(f"fuzz: seeds from {captures} captures:",
      ", ".join(f"{t} {len(os.listdir('fuzz/corpus/' + t))}"
                for t in ("capture", "pipeline", "decode_print")))
PY
    local i=0
    while IFS= read -r line; do
        # Words are NUL-separated in the cli target's input.
        printf '%s' "$line" | tr ' ' '\0' > "fuzz/corpus/cli/seed-$i"
        i=$((i + 1))
    done <<'EOF'
read x.pcap
read - --plain -# -S -e -vv -tttt --nano
read x.pcap --json -c 10 tcp port 80
read x.pcap --ndjson --explain tcp[tcpflags] & (tcp-syn|tcp-fin) != 0
read x.pcap --summary -ttttt ip6 and ip6 protochain 6
read x.pcap vlan and vlan and tcp
read x.pcap --plain --json
read x.pcap -tttttt
live -i lo -c 5 -s 96 -w x.pcap -p tcp port 80
live -D
live -i lo --duration 0.5 -v
--version
read --help
EOF
    echo "fuzz: $i cli seeds"
    analysis_seeds
}

# The analysis target's input (fuzz/src/lib.rs `segments`): two bytes of limits, then per
# segment [ends][ports][flags u16][ctl][seq u32][ack u32][window u16][len u16][time step u16]
# [options] [option values]. Seeds: a whole connection (handshake with options, data, close),
# the same with a RST, and SYNs from every client port to one server.
analysis_seeds() {
    python3 - <<'PY'
import struct
def seg(ends, ports, flags, ctl, seq=0, ack=0, win=65535, ln=0, step=1, opts=b""):
    return struct.pack(">BBHBIIHHh", ends, ports, flags, ctl, seq, ack, win, ln, step) + opts
C, S = (0 | 1 << 3, 2 | 0 << 2), (1 | 0 << 3, 0 | 2 << 2)  # 10.0.0.1:40000 <-> 10.0.0.2:80
synopt = bytes([0x0f]) + struct.pack(">HBII", 1460, 7, 1, 0)   # MSS, wscale, SACK ok, TS
conn = [seg(*C, 0x002, 0x11, seq=1000, opts=synopt),
        seg(*S, 0x012, 0x11, seq=5000, opts=synopt),
        seg(*C, 0x010, 0x10, opts=b"\0"),
        seg(*C, 0x018, 0x14, ln=100, opts=b"\0"),
        seg(*S, 0x010, 0x10, opts=b"\0"),
        seg(*C, 0x011, 0x10, opts=b"\0"),
        seg(*S, 0x011, 0x10, opts=b"\0"),
        seg(*C, 0x010, 0x10, opts=b"\0")]
seeds = {
    "connection": b"\x80\x00" + b"".join(conn),
    "reset": b"\x41\x80" + b"".join(conn[:4]) + seg(*S, 0x004, 0x10, opts=b"\0"),
    "synflood": b"\x42\xc0" + b"".join(seg(c | 1 << 3, p, 0x002, 0x01, seq=7 * c + p, opts=b"\0")
                                        for c in (0, 2, 3, 4) for p in range(4)),
}
for name, data in seeds.items():
    open(f"fuzz/corpus/analysis/seed-{name}", "wb").write(data)
print(f"fuzz: {len(seeds)} analysis seeds")
PY
}

run() {
    local target=$1 secs=$2
    if [ -z "$(ls -A "fuzz/corpus/$target" 2>/dev/null)" ]; then
        if [ "$target" = analysis ]; then
            mkdir -p fuzz/corpus/analysis
            analysis_seeds
        else
            seeds
        fi
    fi
    mkdir -p "fuzz/artifacts/$target"
    # -s none: tcplens has no unsafe code, so the sanitizer would only slow the search down;
    # overflow checks and debug assertions stay on (cargo fuzz's default).
    cargo +nightly fuzz run -s none "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -max_len="$(max_len "$target")" "${LIMITS[@]}" \
        -print_final_stats=1 2>&1 | tee "fuzz/artifacts/$target/last-run.log" |
        grep -E '^(Done|stat::|INFO: seed corpus|==|SUMMARY|.*(panicked|crash-|timeout-|oom-))' || true
    # libFuzzer's exit status is lost in the pipe: a saved crash is the failure.
    if grep -qE '^(artifact_prefix|Test unit written to)|deadly signal|panicked' \
        "fuzz/artifacts/$target/last-run.log"; then
        echo "fuzz: $target FAILED: see fuzz/artifacts/$target/"
        return 1
    fi
}

# decode_print input -> pcap (nanosecond, little-endian); prints the tcpdump flags it selects.
to_pcap() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
LINKTYPES = [0, 1, 101, 108, 113, 228, 229, 276, 147]  # fuzz/src/lib.rs LINKTYPES
TIMES = ["", "-t", "-tt", "-ttt", "-tttt", "-ttttt"]
b = open(sys.argv[1], "rb").read()
lt, flags, time, rest = b[0], b[1], b[2], b[3:]
out = [struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, LINKTYPES[lt % 9])]
n = 0
while len(rest) >= 14 and n < 64:  # fuzz/src/lib.rs frames(), MAX_FRAMES
    cap, orig, ts = struct.unpack(">HIq", rest[:14])
    data = rest[14:14 + cap]
    rest = rest[14 + cap:]
    out.append(struct.pack("<IIII", (ts // 10**9) & 0xffffffff, ts % 10**9, len(data), orig) + data)
    n += 1
open(sys.argv[2], "wb").write(b"".join(out))
words = ["-" + "v" * (flags & 3)] if flags & 3 else []
words += [w for bit, w in ((4, "-e"), (8, "-S"), (16, "--nano")) if flags & bit]
words += [TIMES[time % 6]] if time % 6 else []
print(" ".join(words))
PY
}

regress_goldens() {
    export TZ=GMT0
    local r=testdata/regress
    grep -v '^[[:space:]]*\(#\|$\)' "$r/LIST" | while read -r name capture flags; do
        # shellcheck disable=SC2086  # flags are words
        tcpdump -# -n -r "$r/$capture" $flags > "$r/$name.out" 2>/dev/null || true
    done
    tcpdump --version > "$r/VERSION" 2>&1
}

case ${1:-} in
    seeds) seeds ;;
    to-pcap) to_pcap "$2" "$3" ;;
    regress-goldens) regress_goldens ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    run)
        [ $# -eq 3 ] || { echo "usage: $0 run TARGET SECONDS" >&2; exit 1; }
        have_tools || exit 1
        run "$2" "$3"
        ;;
    smoke)
        secs=${2:-20}
        have_tools || exit 0
        cargo +nightly fuzz build -s none
        status=0
        for t in "${TARGETS[@]}"; do
            echo "fuzz: $t for ${secs}s"
            run "$t" "$secs" || status=1
        done
        exit $status
        ;;
    *)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 1
        ;;
esac
