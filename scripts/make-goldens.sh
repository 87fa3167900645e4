#!/bin/sh
# Regenerates the golden files from tcpdump (the oracle) for every entry of
# testdata/golden/LIST ("NAME CAPTURE [FLAGS...]"):
#   testdata/golden/NAME.out  TZ=GMT0 tcpdump -# -n -r CAPTURE FLAGS
#   testdata/golden/NAME.tcp  numbers of the packets libpcap's filter calls TCP
#   testdata/golden/VERSION   tcpdump --version
# Run from anywhere; needs tcpdump and python3. `cargo test` needs neither.
set -eu
cd "$(dirname "$0")/.."
TCPDUMP=${TCPDUMP:-tcpdump}
G=testdata/golden
export TZ=GMT0
"$TCPDUMP" --version > "$G/VERSION" 2>&1
grep -v '^[[:space:]]*\(#\|$\)' "$G/LIST" | while read -r name capture flags; do
    # shellcheck disable=SC2086  # flags are words
    "$TCPDUMP" -# -n -r "$capture" $flags > "$G/$name.out" 2>/dev/null || true
    python3 - "$TCPDUMP" "$capture" > "$G/$name.tcp" <<'PY'
import re, subprocess, sys
td, cap = sys.argv[1], sys.argv[2]
FILTERS = ["tcp or (vlan and tcp) or (vlan and vlan and tcp) or (ip6 and ip6 protochain 6)",
           "tcp or (ip6 and ip6 protochain 6)"]
def run(args):
    p = subprocess.run([td] + args, capture_output=True)
    return p, p.stdout.decode("utf-8", "replace")
_, allout = run(["-#", "-n", "-tt", "--nano", "-r", cap])
firsts = [(int(m.group(1)), m.group(2)) for m in
          (re.match(r"^ *(\d+)  (.*)$", l) for l in allout.splitlines()) if m]
for f in FILTERS:
    p, out = run(["-n", "-tt", "--nano", "-r", cap, f])
    if p.returncode != 0 and not out:
        continue
    want = [l for l in out.splitlines() if l[:1].isdigit()]
    nums, i = [], 0
    for n, text in firsts:
        if i < len(want) and text == want[i]:
            nums.append(n)
            i += 1
    print("\n".join(map(str, nums)))
    break
PY
done
echo "goldens written to $G"
