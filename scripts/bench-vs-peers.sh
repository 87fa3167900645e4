#!/usr/bin/env bash
# Whole-process throughput and peak memory of tcplens against tcpdump, tcptrace and tshark on
# the shared gen-pcap workloads. Prints a Markdown table (paste it into docs/performance.md).
#
#   scripts/bench-vs-peers.sh [--flows N[,N...]] [--big] [--runs N] [--data-dir DIR]
#                             [--tcplens BIN] [--peers "LIST"] [--no-install] [--no-build]
#
#   --flows N    workload(s): gen_pcap.py --flows N --seed 1 (default 21000: 986k packets,
#                418 MB); a comma-separated list runs several
#   --big        also the 5M-packet workload (--flows 105000, 2.1 GB; peers take minutes)
#   --runs N     timed runs of every command (default 5), interleaved A B A B
#   --data-dir   where workloads and outputs go (default target/bench-data; never committed)
#   --tcplens    measure this binary instead of building target/release/tcplens
#   --peers      which peers (default "tcpdump tcptrace tshark-conv tshark-fields");
#                "" for none
#   --no-install do not apt-get install missing peers (they are then skipped)
#   --no-build   use target/release/tcplens as it is
#
# Rows: cat (page cache), a bare pcap-parser record walk (examples/walk.rs: the floor issue 7's
# targets are measured against), tcplens' modes, the peers. Ratios are of wall medians.
# Each run is timed on its own: wall clock from date +%s%N; CPU (user + sys, 10 ms steps) and
# peak RSS from GNU time. On a shared machine the CPU column is the steadier one.
# Outputs go to a file in the data dir, which is removed after each run. The workload is read
# once beforehand so every command finds it in the page cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
flows=21000
big=0
runs=5
data=$root/target/bench-data
bin=
peers="tcpdump tcptrace tshark-conv tshark-fields"
install=1
build=1
shared=${TCPLENS_SHARED:-}

die() { echo "bench-vs-peers: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        --flows) flows=${2:?}; shift 2 ;;
        --big) big=1; shift ;;
        --runs) runs=${2:?}; shift 2 ;;
        --data-dir) data=${2:?}; shift 2 ;;
        --tcplens) bin=${2:?}; build=0; shift 2 ;;
        --peers) peers=${2?}; shift 2 ;;
        --no-install) install=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
if [ -z "$shared" ]; then
    # The shared folder sits beside the crate (a worktree may be one level deeper).
    for d in "$root/../shared" "$root/../../shared"; do
        [ -d "$d/tools" ] && { shared=$d; break; }
    done
fi
gen=${shared:-$root/../shared}/tools/gen-pcap/gen_pcap.py
[ -f "$gen" ] || die "generator not found at $gen (set TCPLENS_SHARED)"
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is needed for peak RSS"
mkdir -p "$data"
list=${flows//,/ }
[ $big = 1 ] && list="$list 105000"

if [ $build = 1 ]; then
    (cd "$root" && cargo build --release --quiet)
fi
# The floor of issue 7's targets: a bare pcap-parser record walk (examples/walk.rs).
walk=$root/target/release/examples/walk
(cd "$root" && cargo build --release --quiet --example walk) || true
[ -x "$walk" ] || { echo "bench-vs-peers: no record-walk example, its row is skipped" >&2; walk=; }
bin=${bin:-$root/target/release/tcplens}
[ -x "$bin" ] || die "no tcplens binary at $bin"

# Peers: install what is missing (Debian packages), skip what still is.
want_pkg() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null && return 0
    if [ $install = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $pkg" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1; } || true
    fi
    command -v "$cmd" >/dev/null
}
active=()
for p in $peers; do
    case $p in
        tcpdump) want_pkg tcpdump tcpdump && active+=("$p") ;;
        tcptrace) want_pkg tcptrace tcptrace && active+=("$p") ;;
        tshark-conv|tshark-fields) want_pkg tshark tshark && active+=("$p") ;;
        *) die "unknown peer $p" ;;
    esac
    [[ " ${active[*]-} " == *" $p "* ]] || echo "bench-vs-peers: $p not available, skipped" >&2
done

workload() {
    local n=$1 out=$data/gen-$1-seed1.pcap
    if [ ! -s "$out" ]; then
        echo "generating $out" >&2
        python3 "$gen" --flows "$n" --seed 1 --quiet --out "$out.tmp" --truth /dev/null
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# Which tcplens modes this binary has: a flag in --help that writes something, and the
# default (annotated) text only once it differs from --plain.
probe=$(workload 50)
help=$("$bin" read --help 2>&1 || true)
modes=()
has_flag() { grep -q -- "$1" <<<"$help"; }
has_flag --plain && modes+=(plain)
if has_flag --plain && ! cmp -s <("$bin" read "$probe" 2>/dev/null) <("$bin" read "$probe" --plain 2>/dev/null); then
    modes+=(annotated)
fi
has_flag --summary && modes+=(summary)
if has_flag -- '--json' && [ -n "$("$bin" read "$probe" --json 2>/dev/null | head -c 1)" ]; then
    modes+=(json)
fi

# The command for a name; output goes to $outf.
cmd_of() {
    local name=$1 f=$2
    case $name in
        cat) echo "cat '$f' > /dev/null" ;;
        walk) echo "'$walk' '$f' > /dev/null" ;;
        plain) echo "'$bin' read '$f' --plain > '$outf' 2>/dev/null" ;;
        annotated) echo "'$bin' read '$f' > '$outf' 2>/dev/null" ;;
        summary) echo "'$bin' read '$f' --summary > '$outf' 2>/dev/null" ;;
        json) echo "'$bin' read '$f' --json > '$outf' 2>/dev/null" ;;
        tcpdump) echo "TZ=UTC tcpdump -nn -r '$f' > '$outf' 2>/dev/null" ;;
        tcptrace) echo "tcptrace -n -l '$f' > '$outf' 2>/dev/null" ;;
        tshark-conv) echo "tshark -n -q -z conv,tcp -r '$f' > '$outf' 2>/dev/null" ;;
        tshark-fields) echo "tshark -n -r '$f' -T fields -e tcp.analysis.flags > '$outf' 2>/dev/null" ;;
    esac
}
label_of() {
    case $1 in
        cat) echo "cat > /dev/null" ;;
        walk) echo "bare record walk (pcap-parser)" ;;
        plain) echo "tcplens --plain > file" ;;
        annotated) echo "tcplens (annotated) > file" ;;
        summary) echo "tcplens --summary" ;;
        json) echo "tcplens --json > file" ;;
        tcpdump) echo "TZ=UTC tcpdump -nn -r > file" ;;
        tcptrace) echo "tcptrace -n -l" ;;
        tshark-conv) echo "tshark -q -z conv,tcp" ;;
        tshark-fields) echo "tshark -T fields -e tcp.analysis.flags" ;;
    esac
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r)"
echo "tcplens: $("$bin" --version 2>/dev/null || echo "$bin") ($(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
for p in "${active[@]-}"; do
    case $p in
        tcpdump) echo "tcpdump: $(tcpdump --version 2>&1 | head -1)" ;;
        tcptrace) echo "tcptrace: $(tcptrace -v 2>&1 | grep -m1 -i version || echo '?')" ;;
        tshark-conv) echo "tshark: $(tshark --version 2>/dev/null | head -1)" ;;
    esac
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $list; do
    f=$(workload "$n")
    outf=$data/bench-out.$$
    trap 'rm -f "$outf"' EXIT
    bytes=$(stat -L -c %s "$f")  # -L: the workload may be a symlink
    packets=$("$bin" read "$f" --summary 2>&1 >/dev/null | sed -n 's/^\([0-9][0-9]*\) packets read$/\1/p' | head -1)
    cat "$f" >/dev/null
    names=(cat ${walk:+walk} "${modes[@]}" "${active[@]-}")
    declare -A times=() rss=() cpu=()
    for ((r = 1; r <= runs; r++)); do
        for name in "${names[@]}"; do
            [ -n "$name" ] || continue
            c=$(cmd_of "$name" "$f")
            t0=$(date +%s%N)
            /usr/bin/time -f '%M %U %S' -o "$data/rss.$$" bash -c "$c" || echo "bench-vs-peers: $name failed" >&2
            t1=$(date +%s%N)
            times[$name]+="$(( (t1 - t0) / 1000 )) "
            read -r kb user sys < <(tail -1 "$data/rss.$$")
            rss[$name]+="$kb "
            cpu[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') "
            rm -f "$outf"
            printf '.' >&2
        done
    done
    rm -f "$data/rss.$$"
    echo >&2
    echo
    echo "workload: gen_pcap.py --flows $n --seed 1: ${packets:-?} packets, $((bytes / 1000000)) MB; $runs runs each, interleaved; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| command | wall median (s) | CPU median (s) | packets/s | MB/s | peak RSS (MB) | vs tcpdump | vs tcptrace | vs tshark conv | vs bare walk |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    # Ratios are of wall-clock medians (the issue's measure); CPU is for a shared machine.
    wall_of() { [ -n "${times[$1]-}" ] && tr ' ' '\n' <<<"${times[$1]}" | grep . | median; }
    td=$(wall_of tcpdump || true)
    tt=$(wall_of tcptrace || true)
    ts=$(wall_of tshark-conv || true)
    tw=$(wall_of walk || true)
    for name in "${names[@]}"; do
        [ -n "$name" ] || continue
        med=$(wall_of "$name")
        peak=$(tr ' ' '\n' <<<"${rss[$name]}" | grep . | sort -n | tail -1)
        cmed=$(tr ' ' '\n' <<<"${cpu[$name]}" | grep . | median)
        awk -v l="$(label_of "$name")" -v us="$med" -v kb="$peak" -v p="${packets:-0}" -v cpu="$cmed" \
            -v b="$bytes" -v td="$td" -v tt="$tt" -v ts="$ts" -v tw="$tw" -v self="$name" '
        function vs(peer,   r) {
            if (peer == "") return ""
            r = peer / us
            return (r >= 1) ? sprintf("%.1fx faster", r) : sprintf("%.1fx slower", 1 / r)
        }
        BEGIN {
            s = us / 1e6
            pps = (p > 0) ? sprintf("%.2fM", p / s / 1e6) : "?"
            ours = (self ~ /^(plain|annotated|summary|json)$/)
            a = ours ? vs(td) : ""
            c = (ours && self != "plain") ? vs(tt) : ""
            d = (ours && self != "plain") ? vs(ts) : ""
            w = (ours && tw != "") ? sprintf("%.1fx", us / tw) : ""
            printf "| %s | %.3f | %.2f | %s | %.0f | %.1f | %s | %s | %s | %s |\n", l, s, cpu, pps, b / s / 1e6, kb / 1024, a, c, d, w
        }'
    done
    js=$(wall_of json || true)
    sm=$(wall_of summary || true)
    if [ -n "$js" ] && [ -n "$sm" ]; then
        echo
        awk -v j="$js" -v s="$sm" 'BEGIN {printf "--json / --summary (wall): %.2fx\n", j / s}'
    fi
    unset times rss cpu
done
