#!/usr/bin/env bash
# The seed page's "Local Testing" recipe, runnable: start pounce, make a slow
# request, send SIGTERM while it is in flight, and show the shutdown log.
#
#   scripts/drain-local.sh            # uses target/release/pounce (builds it if missing)
#   POUNCE=path/to/pounce scripts/drain-local.sh
#
# Expect: the slow request gets HTTP 200, the log shows
# "Worker K draining 1 active connection(s)..." then "Worker K stopped",
# and pounce exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN=${POUNCE:-target/release/pounce}
[ -x "$BIN" ] || cargo build --release -p pounce-cli
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }

log=$(mktemp)
PID=""
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -f "$log"' EXIT

# Start server
start_pounce "$log" demo --port 0 --workers 2

# Make a long-running request in background
curl -s -o /dev/null -w "slow request: HTTP %{http_code} after %{time_total}s\n" "http://127.0.0.1:$PORT/sleep/3000" &
CURL=$!
sleep 0.5

# Send SIGTERM
kill -TERM "$PID"
wait "$CURL" || true
set +e
wait "$PID"; code=$?
set -e
PID=""

echo "--- pounce log"
cat "$log"
echo "--- pounce exited with $code"
grep -q "draining 1 active connection(s)..." "$log" && grep -q "stopped" "$log" && [ "$code" = 0 ]
