#!/usr/bin/env bash
# The first, simple comparison: pounce demo vs nginx (same worker count) under
# `wrk -t1 -c64 -d<dur>` on GET /, alternating A B A B, printing each run and the median ratio.
#
#   bench/compare-wrk.sh [--rounds N] [--duration S] [--workers N] [--no-install] [--no-build]
#
# Defaults: 5 rounds, 10 s, 2 workers. The full harness is bench/run.sh.
set -uo pipefail

# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ROUNDS=5 DURATION=10 WORKERS=2 INSTALL=1 BUILD=1
while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --workers) WORKERS=${2:?}; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
positive_ints ROUNDS DURATION WORKERS

bench_init
((INSTALL)) && ensure_tools
pounce_binary "$BUILD"
raise_nofile 65536

RESULTS="$BENCH_TMP/results.jsonl"
: >"$RESULTS"
log "pounce vs nginx: wrk -t1 -c64 -d${DURATION}s, $WORKERS workers, $ROUNDS rounds (A B A B)"
for ((round = 1; round <= ROUNDS; round++)); do
    for server in pounce nginx; do
        start_server "$server" "$WORKERS"
        run_client 40 wrk -t1 -c64 -d1s "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1  # warm-up
        out="$BENCH_TMP/$server-$round.txt"
        run_client $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" --latency \
            "http://127.0.0.1:$SERVER_PORT/" >"$out" 2>&1 || log "wrk exited $? against $server"
        "$PY" "$BENCH_DIR/benchtool.py" record-wrk "$out" --results "$RESULTS" \
            --server "$server" --round "$round" --scenario plaintext-c64 2>/dev/null \
            || log "no numbers from wrk against $server in round $round"
        stop_server "$server" "$SERVER_PID"
    done
done

"$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
rps = {"pounce": {}, "nginx": {}}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["metric"] == "rps":
        rps[r["server"]][r["round"]] = r["value"]
rounds = sorted(set(rps["pounce"]) | set(rps["nginx"]))
print(f"{'round':>5}  {'pounce req/s':>13}  {'nginx req/s':>12}  {'ratio':>6}")
for r in rounds:
    p, n = rps["pounce"].get(r), rps["nginx"].get(r)
    ratio = f"{p / n:.2f}" if p and n else "-"
    print(f"{r:>5}  {p or 0:>13,.0f}  {n or 0:>12,.0f}  {ratio:>6}")
if not rps["pounce"] or not rps["nginx"]:
    print("no numbers for one of the servers", file=sys.stderr)
    sys.exit(1)
mp, mn = statistics.median(rps["pounce"].values()), statistics.median(rps["nginx"].values())
pairs = [rps["pounce"][r] / rps["nginx"][r] for r in rounds if r in rps["pounce"] and r in rps["nginx"]]
print(f"median  {mp:>13,.0f}  {mn:>12,.0f}  {mp / mn:>6.2f}")
print(f"pounce/nginx req/s: median of medians {mp / mn:.2f}, median of per-round ratios {statistics.median(pairs):.2f}")
EOF
