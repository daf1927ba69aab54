#!/usr/bin/env bash
# pounce with its workers pinned (the default) vs unpinned (`--pin-workers false`), alternated:
# plaintext `wrk -t1` at several connection counts, req/s, p99 and server CPU per request.
#
#   bench/pinning.sh [--rounds N] [--duration S] [--workers N] [--conns "64 256 1024 4096"] [--no-build]
#
# Defaults: 3 rounds, 5 s, 2 workers. On this 2-vCPU box wrk shares the workers' cores, which
# is the case the option is for (NOTES §15). Everything on 127.0.0.1; servers killed by pid.
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ROUNDS=3 DURATION=5 WORKERS=2 CONNS="64 256 1024 4096" BUILD=1
while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --workers) WORKERS=${2:?}; shift ;;
    --conns) CONNS=${2:?}; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
positive_ints ROUNDS DURATION WORKERS
for c in $CONNS; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || { echo "--conns takes positive integers" >&2; exit 2; }; done

bench_init
pounce_binary "$BUILD"
raise_nofile 65536

RESULTS="$BENCH_TMP/results.jsonl"
: >"$RESULTS"
log "pinned vs unpinned workers: wrk -t1 -d${DURATION}s at $CONNS connections, $WORKERS workers, $ROUNDS rounds"
for ((round = 1; round <= ROUNDS; round++)); do
    for c in $CONNS; do
        for pin in true false; do
            variant=$([[ $pin == true ]] && echo pinned || echo unpinned)
            POUNCE_PIN_WORKERS=$pin start_server pounce "$WORKERS"
            run_client 40 wrk -t1 -c"$c" -d1s "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
            out="$BENCH_TMP/$variant-$c-$round.txt"
            cpu0=$(cpu_seconds "$SERVER_PID")
            run_client $((DURATION + 30)) wrk -t1 -c"$c" -d"${DURATION}s" --latency \
                "http://127.0.0.1:$SERVER_PORT/" >"$out" 2>&1 || log "wrk exited $? ($variant, c$c)"
            cpu1=$(cpu_seconds "$SERVER_PID")
            "$PY" "$BENCH_DIR/benchtool.py" record-wrk "$out" --results "$RESULTS" \
                --server "$variant" --round "$round" --scenario "c$c" 2>/dev/null \
                || log "no numbers from wrk ($variant, c$c, round $round)"
            echo "{\"server\":\"$variant\",\"round\":$round,\"scenario\":\"c$c\",\"metric\":\"cpu\",\"value\":$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')}" >>"$RESULTS"
            stop_server pounce "$SERVER_PID"
        done
    done
done

"$PY" - "$RESULTS" "$CONNS" <<'EOF'
import json, statistics, sys
from collections import defaultdict
v = defaultdict(dict)
for line in open(sys.argv[1]):
    r = json.loads(line)
    v[(r["server"], r["scenario"], r["metric"])][r["round"]] = r["value"]
def med(s, sc, m):
    x = v.get((s, sc, m))
    return statistics.median(x.values()) if x else float("nan")
print("| connections | pinned req/s | unpinned req/s | unpinned ÷ pinned | pinned p99 ms | unpinned p99 ms | CPU µs/req pinned | unpinned |")
print("|--:|--:|--:|--:|--:|--:|--:|--:|")
for c in sys.argv[2].split():
    sc = f"c{c}"
    row = []
    for s in ("pinned", "unpinned"):
        req, cpu = v.get((s, sc, "requests"), {}), v.get((s, sc, "cpu"), {})
        per = [cpu[r] / req[r] * 1e6 for r in req if r in cpu and req[r]]
        row.append((med(s, sc, "rps"), med(s, sc, "p99_ms"), statistics.median(per) if per else float("nan")))
    (pr, pp, pc), (ur, up, uc) = row
    print(f"| {c} | {pr:,.0f} | {ur:,.0f} | {ur / pr:.2f}× | {pp:.2f} | {up:.2f} | {pc:.2f} | {uc:.2f} |")
EOF
