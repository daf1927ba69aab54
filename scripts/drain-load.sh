#!/usr/bin/env bash
# The seed page's "Load Testing" recipe, runnable: hey drives load, SIGTERM
# lands mid-run, then every failed request is classified.
#
#   scripts/drain-load.sh [SECONDS=10] [SIGTERM_AFTER=4] [CONCURRENCY=50]
#
# hey keeps going after pounce has exited, so requests fail with "connection
# refused" then: nothing was sent, the server is simply gone (in Kubernetes the
# endpoint would already be removed). What must never appear is a request
# that was sent and got no response: reset, EOF or timeout. Exit 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DUR=${1:-10}; AFTER=${2:-4}; CONC=${3:-50}
BIN=${POUNCE:-target/release/pounce}
[ -x "$BIN" ] || cargo build --release -p pounce-cli
command -v hey >/dev/null || { echo "needs hey (apt-get install hey)" >&2; exit 1; }

log=$(mktemp); out=$(mktemp)
PID=""; HEY=""
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; [ -n "$HEY" ] && kill -9 "$HEY" 2>/dev/null; rm -f "$log" "$out"' EXIT

start_pounce "$log" demo --port 0

hey -z "${DUR}s" -c "$CONC" "http://127.0.0.1:$PORT/" >"$out" 2>&1 &
HEY=$!
sleep "$AFTER"
t0=$(date +%s.%N)
kill -TERM "$PID"
set +e
wait "$PID"; code=$?
t1=$(date +%s.%N)
PID=""
wait "$HEY"
HEY=""
set -e

echo "--- pounce log"; cat "$log"
echo "--- pounce exit code $code, SIGTERM->exit $(python3 -c "print(f'{$t1-$t0:.3f}')")s"
echo "--- hey status codes"
sed -n '/Status code distribution:/,/^$/p' "$out" | tail -n +2
echo "--- failed requests, classified"
errors=$(sed -n '/Error distribution:/,$p' "$out" | tail -n +2)
set +o pipefail
count() { echo "$errors" | grep -E "$1" | sed -n 's/^ *\[\([0-9]*\)\].*/\1/p' | awk '{s+=$1} END {print s+0}'; }
refused=$(count 'connection refused')
reset=$(count 'reset by peer|broken pipe')
eof=$(count 'EOF')
timeout=$(count 'Timeout|deadline exceeded')
other=$(echo "$errors" | grep -vE 'connection refused|reset by peer|broken pipe|EOF|Timeout|deadline exceeded' | sed -n 's/^ *\[\([0-9]*\)\].*/\1/p' | awk '{s+=$1} END {print s+0}')
printf '  refused at connect (server gone, nothing sent): %s\n  reset after sending: %s\n  EOF before a response: %s\n  timed out: %s\n  other: %s\n' \
  "$refused" "$reset" "$eof" "$timeout" "$other"
dropped=$((reset + eof + timeout + other))
echo "dropped requests: $dropped"
[ "$dropped" = 0 ] || echo "$errors" | grep -vE 'connection refused' | head -5
[ "$dropped" = 0 ] && [ "$code" = 0 ]
