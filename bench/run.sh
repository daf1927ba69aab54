#!/usr/bin/env bash
# pounce vs nginx, side by side on this machine, alternating A B A B. See bench/README.md.
#
#   bench/run.sh            full run (3 rounds, 10 s per measurement, 5 000 and 10 000 idle
#                           connections) → bench/RESULTS.md and bench/results.png
#   bench/run.sh --quick    smoke run (1 round, 2 s per measurement, 500 idle connections)
#                           → bench/out/quick-results.md (never touches bench/RESULTS.md)
#   bench/run.sh --peers --scaling
#                           adds the Rust peers (bench/peers/: actix-web, hyper, may-minihttp,
#                           monoio) and the connection-scaling section → bench/RESULTS-peers.md
#
# Exits non-zero only if it could not produce the numbers, never because of their values.
set -uo pipefail

# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

usage() {
    cat <<'EOF'
usage: bench/run.sh [--quick] [options]

  --quick            smoke mode: 1 round, 2 s per measurement, 500 idle connections;
                     writes bench/out/quick-results.{md,png}
  --rounds N         rounds of A B alternation (default 3; quick 1)
  --duration S       seconds per wrk/h2load measurement (default 10; quick 2)
  --workers N        workers for both servers (default 2)
  --idle "N1 N2"     idle keep-alive connection counts (default "5000 10000"; quick "500")
  --no-install       don't apt-get/pip anything (fail if a tool is missing)
  --no-build         use an existing release binary (POUNCE_BIN or $CARGO_TARGET_DIR/release/pounce)
  --results-md FILE  where to write the report (default bench/RESULTS.md; quick bench/out/quick-results.md;
                     with --peers/--scaling the run's own dir, bench/RESULTS.md untouched)
  --peers            also build and run the peers in bench/peers/ (actix, hyper, may, monoio) in
                     the same alternated rounds; writes bench/RESULTS-peers.md + bench/peers-*.png
  --scaling          add the scaling section: plaintext wrk at 16, 64, 256, 1024, 4096 connections
                     for every server; idle connections default to "1000 10000 50000"
  --only LIST        comma-separated sections to run: load,metrics,idle,scaling (default
                     load,metrics,idle, plus scaling with --scaling)
  --peers-md FILE    where the peers report goes (default bench/RESULTS-peers.md)
  -h, --help         this text

Environment: CARGO_TARGET_DIR (honoured by the build), POUNCE_BIN (skip the build),
PYTHON (default python3), BENCH_KEEP_TMP=1 (keep the temp dir with configs and logs).
EOF
}

ARGS_JSON=$(printf '%s' "$*" | sed 's/\\/\\\\/g; s/"/\\"/g')
QUICK=0 ROUNDS="" DURATION="" WORKERS=2 IDLE="" INSTALL=1 BUILD=1 RESULTS_MD=""
PEERS=0 SCALING=0 ONLY="" PEERS_MD=""
SCALING_CONNS="16 64 256 1024 4096"
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --workers) WORKERS=${2:?}; shift ;;
    --idle) IDLE=${2:?}; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    --results-md) RESULTS_MD=${2:?}; shift ;;
    --peers) PEERS=1 ;;
    --scaling) SCALING=1 ;;
    --only) ONLY=${2:?}; shift ;;
    --peers-md) PEERS_MD=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

[[ -n "$ONLY" ]] || { ONLY=load,metrics,idle; ((SCALING)) && ONLY+=,scaling; }
for sec in ${ONLY//,/ }; do
    [[ $sec =~ ^(load|metrics|idle|scaling)$ ]] || { echo "--only takes load,metrics,idle,scaling" >&2; exit 2; }
done
[[ ,$ONLY, == *,scaling,* ]] && SCALING=1
section() { [[ ,$ONLY, == *,$1,* ]]; }
if ((SCALING)) && [[ -z "$IDLE" ]] && ((!QUICK)); then IDLE="1000 10000 50000"; fi
if ((PEERS || SCALING)) && [[ -z "$RESULTS_MD" ]]; then RESULTS_MD=RUN_DIR; fi
: "${PEERS_MD:=$BENCH_DIR/RESULTS-peers.md}"

if ((QUICK)); then
    MODE=quick
    : "${ROUNDS:=1}" "${DURATION:=2}" "${IDLE:=500}"
    WARMUP=1 SETTLE=0.3 H2LOAD_WARMUP=""
    : "${RESULTS_MD:=$BENCH_DIR/out/quick-results.md}"
else
    MODE=full
    : "${ROUNDS:=3}" "${DURATION:=10}" "${IDLE:=5000 10000}"
    WARMUP=2 SETTLE=1 H2LOAD_WARMUP=1s
    : "${RESULTS_MD:=$BENCH_DIR/RESULTS.md}"
fi
positive_ints ROUNDS DURATION WORKERS
for n in $IDLE; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "--idle takes positive integers" >&2; exit 2; }; done

bench_init

# ---------------------------------------------------------------------------------------------
# Setup

((INSTALL)) && { ensure_tools; ensure_matplotlib; }
((INSTALL)) || for t in nginx wrk hey h2load timeout chrt; do command -v $t >/dev/null || die "$t missing (--no-install)"; done
pounce_binary "$BUILD"
PEER_NAMES=()
if ((PEERS)); then
    peers_binaries "$BUILD"
    PEER_NAMES=("${PEERS_AVAILABLE[@]}")
fi
# Every server measured, in the order of each round (A B C …): nginx under both its default
# policy and `chrt -b 0` (SCHED_BATCH, as pounce's workers), then the peers.
SERVERS=(pounce nginx nginx-batch "${PEER_NAMES[@]}")

MAX_IDLE=0
for n in $IDLE; do ((n > MAX_IDLE)) && MAX_IDLE=$n; done
# Servers and the idle client each hold one fd per connection; wrk one per scaling connection.
raise_nofile $((MAX_IDLE * 2 + 4096 > 65536 ? MAX_IDLE * 2 + 4096 : 65536))
# An idle count the open-files limit cannot hold is skipped (said in the log and the report),
# not a failure: raising the hard limit needs CAP_SYS_RESOURCE, which a container may lack.
IDLE_SKIPPED=()
if section idle; then
    kept=()
    for n in $IDLE; do
        if ((NOFILE >= n + 512)); then kept+=("$n"); else IDLE_SKIPPED+=("$n"); fi
    done
    ((${#IDLE_SKIPPED[@]})) && log "SKIPPING idle counts ${IDLE_SKIPPED[*]}: the open-files limit is $NOFILE (hard limit $(ulimit -Hn), not raisable here), each needs N + 512 descriptors"
    IDLE="${kept[*]}"
    MAX_IDLE=0
    for n in $IDLE; do ((n > MAX_IDLE)) && MAX_IDLE=$n; done
    ((${#kept[@]})) || die "open-files limit is $NOFILE: no idle count fits (raise the hard limit: ulimit -Hn)"
fi
if section scaling; then
    kept=()
    for n in $SCALING_CONNS; do ((NOFILE >= n + 256)) && kept+=("$n") || log "SKIPPING scaling at $n connections: open-files limit $NOFILE"; done
    SCALING_CONNS="${kept[*]}"
fi
# Connection limits for both servers: pounce's --max-connections is per process, nginx's
# worker_connections per worker; either way every idle connection must fit.
MAX_CONNS=$((MAX_IDLE + 1024))
((MAX_CONNS < 10000)) && MAX_CONNS=10000
((MAX_CONNS > NOFILE - 64)) && MAX_CONNS=$((NOFILE - 64))

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN_DIR="$BENCH_DIR/out/$STAMP-$MODE"
RAW="$RUN_DIR/raw"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RAW"
[[ "$RESULTS_MD" == RUN_DIR ]] && RESULTS_MD="$RUN_DIR/results.md"
RESULTS_PNG="${RESULTS_MD%.md}.png"
[[ "$RESULTS_MD" == "$BENCH_DIR/RESULTS.md" ]] && RESULTS_PNG="$BENCH_DIR/results.png"
: >"$RESULTS"
FAILURES=0
fail() { log "FAILED: $*"; FAILURES=$((FAILURES + 1)); }

cat >"$RUN_DIR/meta.json" <<EOF
{"mode": "$MODE", "args": "$ARGS_JSON", "rounds": $ROUNDS, "duration_s": $DURATION, "warmup_s": $WARMUP,
 "workers": $WORKERS, "idle": [$(echo "$IDLE" | tr -s ' ' ',')], "settle_s": $SETTLE,
 "nofile": $NOFILE, "nofile_hard": "$(ulimit -Hn)", "idle_skipped": [$(echo "${IDLE_SKIPPED[*]}" | tr -s ' ' ',')],
 "sections": "$ONLY", "servers": [$(printf '"%s",' "${SERVERS[@]}" | sed 's/,$//')],
 "scaling_conns": [$(echo "$SCALING_CONNS" | tr -s ' ' ',')], "peer_versions": $PEER_VERSIONS_JSON,
 "max_connections": $MAX_CONNS, "keepalive_s": $KEEPALIVE_S, "backlog": $BACKLOG,
 "started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "loadavg_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "pounce_bin": "$POUNCE_BIN"}
EOF
cp "$(nginx_conf "$BENCH_TMP/sample" 8080 "$WORKERS")" "$RUN_DIR/nginx.conf.sample"

log "mode=$MODE rounds=$ROUNDS duration=${DURATION}s workers=$WORKERS idle=[$IDLE] nofile=$NOFILE sections=$ONLY"
log "servers: ${SERVERS[*]}"
log "raw output in ${RUN_DIR#"$REPO_DIR"/}"

# ---------------------------------------------------------------------------------------------
# Measurements

# record_wrk SERVER ROUND SCENARIO FILE CPU0 CPU1
record() {
    local kind=$1 server=$2 round=$3 scenario=$4 file=$5 c0=${6:-} c1=${7:-} extra=()
    [[ -n "$c0" && -n "$c1" ]] && extra=(--cpu-before "$c0" --cpu-after "$c1")
    "$PY" "$BENCH_DIR/benchtool.py" "record-$kind" "$file" --results "$RESULTS" \
        --server "$server" --round "$round" --scenario "$scenario" "${extra[@]}" \
        || fail "$server $scenario round $round: could not parse $(basename "$file")"
}

# wrk_run SERVER ROUND SCENARIO CONNS PATH
wrk_run() {
    local server=$1 round=$2 scenario=$3 conns=$4 path=$5 out c0 c1
    out="$RAW/$server-$scenario-r$round.txt"
    c0=$(cpu_seconds "$SERVER_PID")
    run_client $((DURATION + 30)) wrk -t1 -c"$conns" -d"${DURATION}s" --latency \
        "http://127.0.0.1:$SERVER_PORT$path" >"$out" 2>&1 || fail "$server $scenario round $round: wrk exited $?"
    c1=$(cpu_seconds "$SERVER_PID")
    record wrk "$server" "$round" "$scenario" "$out" "$c0" "$c1"
}

h2load_run() {
    local server=$1 round=$2 scenario=pipelined-m16 out c0 c1 warm=()
    out="$RAW/$server-$scenario-r$round.txt"
    [[ -n "$H2LOAD_WARMUP" ]] && warm=(--warm-up-time "$H2LOAD_WARMUP")
    c0=$(cpu_seconds "$SERVER_PID")
    # -D is timing-based: the request count (-n) is then unbounded, the duration is not.
    run_client $((DURATION + 30)) h2load --h1 -t1 -c64 -m16 -D "$DURATION" "${warm[@]}" \
        "http://127.0.0.1:$SERVER_PORT/" >"$out" 2>&1 || fail "$server $scenario round $round: h2load exited $?"
    c1=$(cpu_seconds "$SERVER_PID")
    record h2load "$server" "$round" "$scenario" "$out" "$c0" "$c1"
}

# hey as a correctness check (and warm-up): every answer on / and /json must be a 200.
hey_check() {
    local server=$1 round=$2 path out n=1600 ok bad=0
    for path in / /json; do
        out="$RAW/$server-hey${path//\//_}-r$round.txt"
        run_client 60 hey -n $n -c 16 -t 5 "http://127.0.0.1:$SERVER_PORT$path" >"$out" 2>&1 \
            || fail "$server hey $path round $round: exited $?"
        ok=$(grep -oE '\[200\][[:space:]]+[0-9]+' "$out" | awk '{s += $2} END {print s + 0}')
        bad=$((bad + n - ok))
    done
    printf '{"round": %d, "server": "%s", "scenario": "check", "metric": "non200", "value": %d}\n' \
        "$round" "$server" "$bad" >>"$RESULTS"
    ((bad == 0)) || log "$server: $bad of $((2 * n)) hey requests were not answered 200"
}

load_block() {
    local server=$1 round=$2
    log "round $round: $server — throughput and latency"
    start_server "$server" "$WORKERS"
    hey_check "$server" "$round"
    run_client $((WARMUP + 30)) wrk -t1 -c64 -d"${WARMUP}s" "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
    wrk_run "$server" "$round" plaintext-c64 64 /
    wrk_run "$server" "$round" plaintext-c256 256 /
    h2load_run "$server" "$round"
    wrk_run "$server" "$round" json-c64 64 /json
    stop_server "$server" "$SERVER_PID"
    ((SERVER_EXIT == 0 || IS_PEER)) || log "$server exited $SERVER_EXIT after its graceful-stop signal"
    [[ $server == pounce ]] && cp "$SERVER_LOG" "$RAW/pounce-load-r$round.log"
}

# Connection scaling: plaintext wrk at each count in SCALING_CONNS on one server instance,
# req/s, p50, p99 and CPU per request at each.
scaling_block() {
    local server=$1 round=$2 c
    log "round $round: $server — scaling over $SCALING_CONNS connections"
    start_server "$server" "$WORKERS"
    run_client $((WARMUP + 30)) wrk -t1 -c64 -d"${WARMUP}s" "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
    for c in $SCALING_CONNS; do
        wrk_run "$server" "$round" "scale-c$c" "$c" /
    done
    stop_server "$server" "$SERVER_PID"
}

# nginx under SCHED_BATCH, for reference: pounce's workers run under it by default, and
# the policy helps any server that shares its cores with the load generator.
batch_block() {
    local round=$1 server=nginx-batch
    log "round $round: $server — plaintext reference"
    start_server "$server" "$WORKERS"
    run_client $((WARMUP + 30)) wrk -t1 -c64 -d"${WARMUP}s" "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
    wrk_run "$server" "$round" plaintext-c64 64 /
    stop_server "$server" "$SERVER_PID"
    ((SERVER_EXIT == 0)) || log "$server exited $SERVER_EXIT after its graceful-stop signal"
}

# The cost of --metrics-addr: pounce with metrics off, then on (the order swaps every round,
# so drift favours neither), plaintext -c64 and pipelined, back to back. While metrics are on,
# /metrics is scraped every second (Prometheus' default is every 15 s), so the cost of being
# read is in the figures too.
metrics_block() {
    local round=$1 server order=(pounce-metrics-off pounce-metrics-on) scraper
    ((round % 2 == 0)) && order=(pounce-metrics-on pounce-metrics-off)
    for server in "${order[@]}"; do
        log "round $round: $server — metrics cost"
        start_server "$server" "$WORKERS"
        run_client $((WARMUP + 30)) wrk -t1 -c64 -d"${WARMUP}s" "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
        scraper=""
        if [[ -n "$METRICS_PORT" ]]; then
            timeout -k 5 $((2 * DURATION + 120)) "$PY" "$BENCH_DIR/benchtool.py" scrape-loop "$METRICS_PORT" \
                --every 1 --for $((2 * DURATION + 60)) >"$RAW/$server-scrapes-r$round.txt" 2>&1 &
            scraper=$!
            track_pid "$scraper"
        fi
        wrk_run "$server" "$round" plaintext-c64 64 /
        h2load_run "$server" "$round"
        if [[ -n "$scraper" ]]; then
            kill "$scraper" 2>/dev/null
            wait "$scraper" 2>/dev/null
            untrack_pid "$scraper"
            printf '{"round": %d, "server": "%s", "scenario": "scrapes", "metric": "errors", "value": %d}\n' \
                "$round" "$server" "$(grep -c 'scrape failed' "$RAW/$server-scrapes-r$round.txt")" >>"$RESULTS"
        fi
        stop_server "$server" "$SERVER_PID"
        ((SERVER_EXIT == 0)) || log "$server exited $SERVER_EXIT after its graceful-stop signal"
    done
}

idle_block() {
    local server=$1 round=$2 n=$3 port dir sig argv=() pidfile log
    port=$(free_port)
    log "round $round: $server — start-up, $n idle keep-alive connections, shutdown"
    case $server in
    pounce) mapfile -t argv < <(pounce_cmd "$port" "$WORKERS"); sig=TERM ;;
    nginx | nginx-batch)
        dir="$BENCH_TMP/nginx-idle-$port"
        mapfile -t argv < <(nginx_cmd "$dir" "$port" "$WORKERS"); sig=QUIT
        [[ $server == nginx-batch ]] && argv=(chrt -b 0 "${argv[@]}")
        ;;
    # The peers: only their RSS and start-up are reported, so SIGKILL ends them at once.
    *) mapfile -t argv < <(peer_cmd "$server" "$port" "$WORKERS"); sig=KILL ;;
    esac
    pidfile="$BENCH_TMP/idle-$server-$port.pid"
    log="$RAW/$server-idle$n-r$round.log"
    BENCH_PIDFILES+=("$pidfile")
    run_client 300 "$PY" "$BENCH_DIR/idle.py" --server "$server" --port "$port" --conns "$n" \
        --signal "$sig" --round "$round" --results "$RESULTS" --pidfile "$pidfile" --log "$log" \
        --settle "$SETTLE" -- "${argv[@]}" || fail "$server idle-$n round $round: idle.py exited $?"
    [[ $server == nginx* && -f "$dir/logs/error.log" ]] && cp "$dir/logs/error.log" "$RAW/nginx-idle$n-r$round.error.log"
}

# Quick mode (CI) keeps its old, short shape: nginx under `chrt -b` only on plaintext -c64,
# and idle connections for pounce and nginx only.
LOAD_SERVERS=("${SERVERS[@]}") IDLE_SERVERS=("${SERVERS[@]}")
if ((QUICK)); then
    LOAD_SERVERS=(pounce nginx "${PEER_NAMES[@]}") IDLE_SERVERS=(pounce nginx "${PEER_NAMES[@]}")
fi
T_START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    if section load; then
        for server in "${LOAD_SERVERS[@]}"; do load_block "$server" "$round"; done
        ((QUICK)) && batch_block "$round"
    fi
    section metrics && metrics_block "$round"
    if section idle; then
        for n in $IDLE; do
            for server in "${IDLE_SERVERS[@]}"; do idle_block "$server" "$round" "$n"; done
        done
    fi
    if section scaling; then
        for server in "${SERVERS[@]}"; do scaling_block "$server" "$round"; done
    fi
done
log "measurements took $((SECONDS - T_START)) s ($FAILURES failure(s))"
printf '{"loadavg_end": "%s", "bench_seconds": %d, "failures": %d}\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)" $((SECONDS - T_START)) "$FAILURES" >"$RUN_DIR/end.json"

# ---------------------------------------------------------------------------------------------
# Report

mkdir -p "$(dirname "$RESULTS_MD")"
"$PY" "$BENCH_DIR/report.py" --run-dir "$RUN_DIR" --md "$RESULTS_MD" --png "$RESULTS_PNG" \
    --repo "$REPO_DIR"
rc=$?
if ((PEERS || SCALING)); then
    "$PY" "$BENCH_DIR/report.py" --run-dir "$RUN_DIR" --peers-md "$PEERS_MD" --repo "$REPO_DIR" \
        || log "the peers report is missing numbers (see above)"
fi
cp "$RESULTS_MD" "$RUN_DIR/" 2>/dev/null
((rc == 0)) || log "the report is missing numbers (see above)"
exit "$rc"
