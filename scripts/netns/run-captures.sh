# Shared by kernel-captures.sh and detector-captures.sh (sourced, not run): checks the tools,
# refuses to run beside another run, starts the python driver under a time limit and always
# deletes its namespaces and stops its captures, also on failure or interrupt.
# The caller sets DRIVER (python file here), OUT_REL (output folder in the repo), TOOLS,
# NAMESPACES and LIMIT_S, and passes its arguments: [OUTDIR] [scenario ...] or --list.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/$OUT_REL
if [[ $# -gt 0 && $1 != --list && ! $1 =~ ^[a-z0-9_]+$ ]]; then out=$1; shift; fi
if [[ ${1:-} == --list ]]; then exec python3 "$here/$DRIVER" --out "$out" --list; fi
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 1; }
for t in $TOOLS; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
for ns in $NAMESPACES; do
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
  for ns in $NAMESPACES; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "$pidfile" "$out"/*.stderr "$out"/*.all
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"
# The whole run is bounded.
# Run in the background and wait, so a signal to this script acts at once.
timeout -s INT "$LIMIT_S" python3 "$here/$DRIVER" --out "$out" --pidfile "$pidfile" "$@" &
child=$!
wait "$child"
