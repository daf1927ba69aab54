#!/usr/bin/env bash
# pounce static:<DIR> vs nginx serving the same files: a 1 KiB and a 1 MiB file, same worker
# count, `wrk -t1 -c64`, runs alternated (pounce, nginx, pounce, nginx…), medians and ratios.
#
#   bench/static.sh [--rounds N] [--duration S] [--workers N] [--sizes "1k 1m"] [--no-build]
#
# Defaults: 5 rounds of 10 s, 2 workers, sizes 1k and 1m. The binary is built with
# `cargo build --release -p pounce-cli` (into $CARGO_TARGET_DIR or target/) unless --no-build,
# or taken from $POUNCE_BIN. nginx runs with its usual static-serving settings (sendfile on,
# tcp_nopush on, access_log off, open_file_cache off as by default), keepalive_requests
# raised so neither server closes wrk's connections, and its workers pinned to CPUs like
# pounce's (worker_cpu_affinity auto, as bench/run.sh does). A second nginx runs under `chrt -b 0`
# (SCHED_BATCH, the policy pounce's workers use by default) as a reference. Everything listens on
# 127.0.0.1 on ports checked to be free; every process started here is killed by pid on exit.
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ROUNDS=5 DURATION=10 WORKERS=2 SIZES="1k 1m" BUILD=1
while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --workers) WORKERS=${2:?}; shift ;;
    --sizes) SIZES=${2:?}; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
positive_ints ROUNDS DURATION WORKERS
for s in $SIZES; do
    [[ "$s" =~ ^[1-9][0-9]*[km]$ ]] || { echo "--sizes takes sizes like 1k or 4m, got $s" >&2; exit 2; }
done

NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ -x "$NGINX" ]] || die "nginx is not installed (apt-get install nginx-light)"

bench_init   # temp dir and the EXIT trap that kills every tracked pid
TMP=$BENCH_TMP

# Waits until something accepts on PORT, while PID lives.
wait_port() {
    local port=$1 pid=$2 i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

pounce_binary "$BUILD"

# The served files: random bytes, so neither server can do anything clever with them.
ROOT="$TMP/www"
mkdir -p "$ROOT"
for s in $SIZES; do
    n=${s%?}
    if [[ ${s: -1} == k ]]; then bytes=$((n * 1024)); else bytes=$((n * 1048576)); fi
    head -c "$bytes" /dev/urandom >"$ROOT/$s.bin"
done

# nginx: master + WORKERS workers in the foreground (we hold its pid), all state in $TMP;
# bench/lib.sh's configuration (as for bench/run.sh) with a static server body.
# Every server's port and pid, by name (pounce, nginx, nginx-batch).
declare -A PORT PID

# start_nginx NAME [PREFIX...] → sets PORT[NAME] and PID[NAME]
start_nginx() {
    local name=$1 conf port
    shift
    port=$(free_port)
    conf=$(nginx_conf "$TMP/$name" "$port" "$WORKERS" "
        root $ROOT;
        sendfile on;
        tcp_nopush on;
        types { application/octet-stream bin; }") || die "cannot write nginx's configuration"
    "$@" "$NGINX" -p "$TMP/$name" -e "$TMP/$name/logs/error.log" -c "$conf" 2>"$TMP/$name/stderr" &
    PORT[$name]=$port PID[$name]=$!
    track_pid "${PID[$name]}"
    wait_port "$port" "${PID[$name]}" || die "$name did not start: $(cat "$TMP/$name/stderr" "$TMP/$name/logs/error.log" 2>/dev/null)"
}
start_nginx nginx
start_nginx nginx-batch chrt -b 0

PORT[pounce]=$(free_port)
"$POUNCE_BIN" "static:$ROOT" --port "${PORT[pounce]}" --workers "$WORKERS" --log-level warn \
    2>"$TMP/pounce.log" &
PID[pounce]=$!
track_pid "${PID[pounce]}"
wait_port "${PORT[pounce]}" "${PID[pounce]}" || die "pounce did not start: $(cat "$TMP/pounce.log")"

# Every server must serve the same bytes.
for s in $SIZES; do
    for port in "${PORT[@]}"; do
        got=$(exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /%s.bin HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n' "$s" >&3 \
            && head -c 200 <&3 | head -1 | tr -d '\r')
        [[ "$got" == "HTTP/1.1 200 OK" ]] || die "port $port answered '$got' for /$s.bin"
    done
done

# Requests/sec from wrk's output (0 if none).
rps_of() { awk '/^Requests\/sec:/ {print $2; f=1} END {if (!f) print 0}' "$1"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

run_wrk() {  # port path duration out
    run_client $(($3 + 30)) wrk -t1 -c64 -d"$3s" "http://127.0.0.1:$1$2" >"$4" 2>&1
}

log "pounce static vs nginx $("$NGINX" -v 2>&1 | sed 's/.*: //'): $WORKERS workers each, wrk -t1 -c64 -d${DURATION}s, $ROUNDS rounds alternated, $(nproc) CPUs"
declare -A RESULTS CPU
for s in $SIZES; do
    for server in pounce nginx nginx-batch; do  # warm-up: page cache, connections, caches
        run_wrk "${PORT[$server]}" "/$s.bin" 2 /dev/null
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in pounce nginx nginx-batch; do
            port=${PORT[$server]} pid=${PID[$server]}
            out="$TMP/$server-$s-$round.txt"
            c0=$(cpu_seconds "$pid")
            run_wrk "$port" "/$s.bin" "$DURATION" "$out"
            c1=$(cpu_seconds "$pid")
            r=$(rps_of "$out")
            # Server CPU (all threads / the master and its workers) per request, in µs.
            cpu=$(awk -v a="$c0" -v b="$c1" -v r="$r" -v d="$DURATION" 'BEGIN { if (r > 0) printf "%.1f", (b - a) * 1e6 / (r * d); else print 0 }')
            errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ' ')
            log "$s round $round $server: $r req/s $(awk '/^Transfer\/sec:/ {print $2}' "$out")/s, ${cpu} µs CPU/request ${errs}"
            RESULTS[$server-$s]+="$r "
            CPU[$server-$s]+="$cpu "
        done
    done
done

ratio() { awk -v p="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", p / n; else print "n/a" }'; }
printf '\n%-5s %-12s %13s %13s %8s %14s %14s %8s\n' size vs "pounce req/s" "their req/s" ratio \
    "pounce us/req" "their us/req" ratio
for s in $SIZES; do
    p=$(median <<<"${RESULTS[pounce-$s]}")
    pc=$(median <<<"${CPU[pounce-$s]}")
    for other in nginx nginx-batch; do
        n=$(median <<<"${RESULTS[$other-$s]}")
        nc=$(median <<<"${CPU[$other-$s]}")
        printf '%-5s %-12s %13.0f %13.0f %8s %14.1f %14.1f %8s\n' "$s" "$other" "$p" "$n" "$(ratio "$p" "$n")" \
            "$pc" "$nc" "$(ratio "$pc" "$nc")"
    done
done
echo "(medians of $ROUNDS runs; ratio = pounce / theirs: higher req/s and lower server CPU per request"
echo " are better for pounce; nginx-batch is nginx under chrt -b, SCHED_BATCH like pounce's workers)"
