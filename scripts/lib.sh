# Shared by the scripts in this directory (sourced, not run).

# start_pounce LOG ARGS... : starts `$BIN ARGS...` in the background with its
# stderr in LOG, sets PID, and waits (bounded) for its "Listening on" line;
# sets PORT. Exits 1 with the log if pounce does not come up.
start_pounce() {
  local log=$1; shift
  "$BIN" "$@" 2>"$log" &
  PID=$!
  PORT=""
  for _ in $(seq 200); do
    PORT=$(sed -n 's/.*Listening on http:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$log")
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  cat "$log"
  echo "pounce did not start" >&2
  exit 1
}
