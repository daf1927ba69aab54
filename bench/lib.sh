# shellcheck shell=bash
# Shared helpers for bench/run.sh and bench/compare-wrk.sh. Source it; don't run it.
#
# Everything here talks to 127.0.0.1 only, every process started here is tracked by pid and
# killed by bench_cleanup (installed as the EXIT trap by bench_init), and every loop is bounded.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PY="${PYTHON:-python3}"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in bench/

BENCH_PIDS=()      # long-lived processes we started (servers)
BENCH_PIDFILES=()  # pid files written by helpers (servers spawned by idle.py)
BENCH_TMP=""       # temp dir: nginx prefix/config/pid/logs, server logs
POLICY_RC_CREATED=0
IS_PEER=0          # set by start_server: the server just started is one of bench/peers

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# descendants PID... → the PIDs and all their descendants (so nginx workers are never orphaned)
descendants() { "$PY" "$BENCH_DIR/benchtool.py" descendants "$@" 2>/dev/null; }

# kill_tree GRACE PID... → SIGTERM the PIDs, wait up to GRACE tenths of a second for them and
# their descendants (collected before signalling) to go, then SIGKILL whatever is left.
kill_tree() {
    local grace=$1 pid i alive
    shift
    local roots=() all=()
    for pid in "$@"; do [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && roots+=("$pid"); done
    ((${#roots[@]})) || return 0
    mapfile -t all < <(descendants "${roots[@]}")
    ((${#all[@]})) || all=("${roots[@]}")
    kill -TERM "${roots[@]}" 2>/dev/null
    for ((i = 0; i < grace; i++)); do
        alive=0
        for pid in "${all[@]}"; do
            if kill -0 "$pid" 2>/dev/null && ! grep -qs '^State:.*[ZX]' "/proc/$pid/status"; then alive=1; break; fi
        done
        ((alive)) || return 0
        sleep 0.1
    done
    kill -KILL "${all[@]}" 2>/dev/null
    return 0
}

bench_cleanup() {
    local rc=$? f
    trap - EXIT INT TERM
    for f in "${BENCH_PIDFILES[@]}"; do
        [[ -s "$f" ]] && BENCH_PIDS+=("$(cat "$f" 2>/dev/null)")
    done
    ((${#BENCH_PIDS[@]})) && kill_tree 50 "${BENCH_PIDS[@]}"
    if [[ "$POLICY_RC_CREATED" == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" && -z "${BENCH_KEEP_TMP:-}" ]]; then
        rm -rf "$BENCH_TMP"
    fi
    exit "$rc"
}

bench_init() {
    BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/pounce-bench.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

track_pid() { BENCH_PIDS+=("$1"); }
untrack_pid() {
    local p keep=()
    for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# Run a client (wrk, h2load, hey…) in the background and wait for it, so that a signal to this
# script runs the trap at once and the client is killed by pid. Every client is wrapped in
# `timeout`, so it is bounded even if nothing signals us. Returns the client's exit status.
run_client() {
    local limit=$1; shift
    timeout -k 5 "$limit" "$@" &
    local pid=$!
    track_pid "$pid"
    wait "$pid"
    local rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Tools

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else return 1
    fi
}

# Install nginx, wrk, hey and h2load from Debian's archive if any is missing.
ensure_tools() {
    local missing=() pkgs=()
    command -v nginx  >/dev/null 2>&1 || { missing+=(nginx);  pkgs+=(nginx); }
    command -v wrk    >/dev/null 2>&1 || { missing+=(wrk);    pkgs+=(wrk); }
    command -v hey    >/dev/null 2>&1 || { missing+=(hey);    pkgs+=(hey); }
    command -v h2load >/dev/null 2>&1 || { missing+=(h2load); pkgs+=(nghttp2-client); }
    command -v timeout >/dev/null 2>&1 || { missing+=(timeout); pkgs+=(coreutils); }
    command -v "$PY" >/dev/null 2>&1 || die "$PY not found (need Python 3.8+)"
    ((${#pkgs[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${pkgs[*]} with apt-get"
    # Keep the nginx package's postinst from starting a system nginx on port 80.
    if [[ $EUID -eq 0 && ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
            && POLICY_RC_CREATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq >&2 \
        || log "apt-get update failed (trying the install anyway)"
    as_root env DEBIAN_FRONTEND=noninteractive timeout 900 \
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
        || die "apt-get install ${pkgs[*]} failed"
    if [[ "$POLICY_RC_CREATED" == 1 ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
    local t
    for t in "${missing[@]}"; do command -v "$t" >/dev/null 2>&1 || die "$t still missing after apt-get"; done
}

# matplotlib is optional: try pip once; the report says when the chart was skipped.
ensure_matplotlib() {
    "$PY" -c 'import matplotlib' 2>/dev/null && return 0
    log "installing matplotlib with pip (optional: only the chart needs it)"
    timeout 300 "$PY" -m pip install -q matplotlib >&2 2>&1 \
        || timeout 300 "$PY" -m pip install -q --break-system-packages matplotlib >&2 2>&1 \
        || true
    "$PY" -c 'import matplotlib' 2>/dev/null || log "matplotlib unavailable: no chart will be drawn"
}

# Build pounce in release mode; sets POUNCE_BIN. Honours CARGO_TARGET_DIR (relative paths are
# relative to the repo root, where cargo runs) and a preset POUNCE_BIN (skips the build).
# positive_ints VAR... → exits 2 naming the option (--var) if a variable is not a positive
# integer; for checking option values right after parsing.
positive_ints() {
    local v
    for v in "$@"; do
        [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "--${v,,} must be a positive integer" >&2; exit 2; }
    done
}

# pounce_binary BUILD → sets POUNCE_BIN: built when BUILD is 1 (a preset POUNCE_BIN skips the
# build), else the existing release binary (--no-build).
pounce_binary() {
    if (($1)); then
        build_pounce
    elif [[ -z "${POUNCE_BIN:-}" ]]; then
        local t="${CARGO_TARGET_DIR:-target}"
        [[ "$t" == /* ]] || t="$REPO_DIR/$t"
        POUNCE_BIN="$t/release/pounce"
    fi
    [[ -x "$POUNCE_BIN" ]] || die "no pounce binary at $POUNCE_BIN (build it, or drop --no-build)"
}

build_pounce() {
    if [[ -n "${POUNCE_BIN:-}" ]]; then
        [[ -x "$POUNCE_BIN" ]] || die "POUNCE_BIN=$POUNCE_BIN is not executable"
        log "using POUNCE_BIN=$POUNCE_BIN (no build)"
        return 0
    fi
    local target="${CARGO_TARGET_DIR:-target}"
    [[ "$target" == /* ]] || target="$REPO_DIR/$target"
    log "cargo build --release -p pounce-cli (target dir $target)"
    (cd "$REPO_DIR" && timeout 3600 cargo build --release -p pounce-cli >&2) || die "cargo build failed"
    POUNCE_BIN="$target/release/pounce"
    [[ -x "$POUNCE_BIN" ]] || die "no binary at $POUNCE_BIN after the build"
}

# The peers (bench/peers/, their own Cargo workspace, never part of pounce's): actix-web 4,
# hyper 1 on tokio, may-minihttp, monoio. Each binary takes `PORT WORKERS`.
PEERS_ALL=(actix hyper may monoio)
PEERS_AVAILABLE=()
PEER_VERSIONS_JSON="{}"
PEERS_DIR="$BENCH_DIR/peers"

# peers_binaries BUILD → builds the peers (in their own target dir, PEERS_TARGET_DIR, default
# bench/peers/target; the root's CARGO_TARGET_DIR is not used) with their committed Cargo.lock,
# and sets PEERS_AVAILABLE to those that built. A peer that fails to build is skipped, loudly.
peers_binaries() {
    local build=$1 p
    PEERS_TARGET="${PEERS_TARGET_DIR:-$PEERS_DIR/target}"
    if ((build)); then
        log "cargo build --release in bench/peers (target dir $PEERS_TARGET)"
        if ! (cd "$PEERS_DIR" && CARGO_TARGET_DIR="$PEERS_TARGET" timeout 3600 cargo build --release --locked >&2); then
            for p in "${PEERS_ALL[@]}"; do
                (cd "$PEERS_DIR" && CARGO_TARGET_DIR="$PEERS_TARGET" timeout 3600 \
                    cargo build --release --locked -p "peer-$p" >&2) || log "peer $p did not build: skipped"
            done
        fi
    fi
    PEERS_AVAILABLE=()
    for p in "${PEERS_ALL[@]}"; do
        if [[ -x "$PEERS_TARGET/release/peer-$p" ]]; then PEERS_AVAILABLE+=("$p")
        else log "no binary for peer $p at $PEERS_TARGET/release/peer-$p: skipped"; fi
    done
    ((${#PEERS_AVAILABLE[@]})) || die "no peer built (see the cargo output above)"
    PEER_VERSIONS_JSON=$("$PY" - "$PEERS_DIR/Cargo.lock" <<'PYEOF'
import json, re, sys
want = ("actix-web", "hyper", "tokio", "may_minihttp", "may", "monoio", "monoio-compat")
text = open(sys.argv[1]).read()
found = {m.group(1): m.group(2) for m in re.finditer(r'name = "([^"]+)"\nversion = "([^"]+)"', text)}
print(json.dumps({k: found[k] for k in want if k in found}))
PYEOF
    ) || PEER_VERSIONS_JSON="{}"
}

is_peer() { local p; for p in "${PEERS_ALL[@]}"; do [[ $1 == "$p" ]] && return 0; done; return 1; }

peer_cmd() { # peer_cmd NAME PORT WORKERS → argv, one per line
    printf '%s\n' "$PEERS_TARGET/release/peer-$1" "$2" "$3"
}

# Raise the open-files limit for this shell and everything it starts (servers and clients
# each hold one fd per connection: 10 000 idle connections plus slack).
raise_nofile() {
    local want=${1:-65536} hard
    hard=$(ulimit -Hn)
    if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then
        ulimit -Hn "$want" 2>/dev/null || true
        hard=$(ulimit -Hn)
    fi
    if [[ "$hard" == unlimited || "$hard" -ge "$want" ]]; then ulimit -Sn "$want"; else ulimit -Sn "$hard"; fi
    NOFILE=$(ulimit -Sn)
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------------------------------------
# Servers. Both get the same worker count, keep-alive timeout (long enough that idle benchmark
# connections are not reaped), connection limit and listen backlog.

KEEPALIVE_S=${KEEPALIVE_S:-120}
MAX_CONNS=${MAX_CONNS:-30000}
BACKLOG=${BACKLOG:-4096}

pounce_cmd() { # pounce_cmd PORT WORKERS → prints argv, one per line
    printf '%s\n' "$POUNCE_BIN" demo --port "$1" --workers "$2" \
        --keep-alive-timeout "$KEEPALIVE_S" --max-connections "$MAX_CONNS" --backlog "$BACKLOG"
}

# The demo's two endpoints, nginx's default server body.
NGINX_DEMO_SERVER='
        location = / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
        location = /json {
            default_type application/json;
            return 200 '"'"'{"message":"Hello, World!"}'"'"';
        }'

# nginx_conf DIR PORT WORKERS [SERVER_BODY] → writes DIR/nginx.conf (prefix DIR) and prints
# its path. SERVER_BODY (default: the demo's endpoints) goes into the server block;
# NGINX_LISTEN_OPTS (e.g. " ssl") is added to its listen line.
nginx_conf() {
    local dir=$1 port=$2 workers=$3 body=${4:-$NGINX_DEMO_SERVER} user_line="" per_worker rlimit
    mkdir -p "$dir/logs" "$dir/tmp"
    [[ $EUID -eq 0 ]] && user_line="user root;"
    # Every worker must be able to hold every connection (reuseport spreads them by hash).
    per_worker=$((MAX_CONNS + 64))
    rlimit=$((per_worker * 2 + 64))
    local nofile=${NOFILE:-$(ulimit -Sn)}
    [[ "$nofile" == unlimited ]] || ((rlimit <= nofile)) || rlimit=$nofile
    cat >"$dir/nginx.conf" <<EOF
# generated by bench/lib.sh — the nginx half of the pounce benchmark
$user_line
daemon off;
master_process on;
worker_processes $workers;
worker_cpu_affinity auto;
worker_rlimit_nofile $rlimit;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections $per_worker;
    use epoll;
}

http {
    access_log off;
    keepalive_timeout ${KEEPALIVE_S}s;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    server {
        # reuseport: one listening socket per worker, like pounce's SO_REUSEPORT listeners.
        listen 127.0.0.1:$port${NGINX_LISTEN_OPTS:-} reuseport backlog=$BACKLOG;$body
    }
}
EOF
    printf '%s\n' "$dir/nginx.conf"
}

nginx_cmd() { # nginx_cmd DIR PORT WORKERS → argv, one per line
    local conf
    conf=$(nginx_conf "$1" "$2" "$3")
    printf '%s\n' nginx -p "$1" -e "$1/logs/error.log" -c "$conf"
}

# Wait until GET / on PORT answers 200 (bounded).
wait_http() { "$PY" "$BENCH_DIR/benchtool.py" wait-http "$1" --timeout "${2:-15}"; }

# start_server NAME WORKERS → sets SERVER_PID, SERVER_PORT, SERVER_LOG (and, for
# pounce-metrics-on, METRICS_PORT). pounce-metrics-off is plain pounce under another name
# (the metrics-cost block's baseline); pounce-metrics-on adds --metrics-addr.
start_server() {
    local name=$1 workers=$2 i port
    SERVER_LOG="$BENCH_TMP/$name-$(date +%s%N).log"
    METRICS_PORT=""
    IS_PEER=0
    is_peer "$name" && IS_PEER=1
    case $name in
    pounce | pounce-metrics-off | pounce-metrics-on)
        local argv=()
        mapfile -t argv < <(pounce_cmd 0 "$workers")
        [[ $name == pounce-metrics-on ]] && argv+=(--metrics-addr 127.0.0.1:0)
        "${argv[@]}" 2>"$SERVER_LOG" >/dev/null &
        SERVER_PID=$!
        track_pid "$SERVER_PID"
        port=""
        for ((i = 0; i < 300; i++)); do
            port=$(grep -oE 'Listening on http://127\.0\.0\.1:[0-9]+' "$SERVER_LOG" 2>/dev/null | head -1 | sed 's/.*://')
            [[ -n "$port" ]] && break
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        [[ -n "$port" ]] || { cat "$SERVER_LOG" >&2; die "pounce did not log its Listening line"; }
        if [[ $name == pounce-metrics-on ]]; then
            METRICS_PORT=$(grep -oE 'Metrics on http://127\.0\.0\.1:[0-9]+' "$SERVER_LOG" | head -1 | sed 's/.*://')
            [[ -n "$METRICS_PORT" ]] || { cat "$SERVER_LOG" >&2; die "pounce did not log its Metrics line"; }
        fi
        ;;
    nginx | nginx-batch)
        port=$(free_port)
        local dir="$BENCH_TMP/nginx-$port" argv=()
        mapfile -t argv < <(nginx_cmd "$dir" "$port" "$workers")
        # The reference run: nginx with the scheduling policy pounce's workers use by
        # default (SCHED_BATCH; chrt execs nginx, whose workers inherit it).
        [[ $name == nginx-batch ]] && argv=(chrt -b 0 "${argv[@]}")
        "${argv[@]}" 2>"$SERVER_LOG" >/dev/null &
        SERVER_PID=$!
        track_pid "$SERVER_PID"
        ;;
    *)
        is_peer "$name" || die "unknown server $name"
        port=$(free_port)
        local argv=()
        mapfile -t argv < <(peer_cmd "$name" "$port" "$workers")
        "${argv[@]}" 2>"$SERVER_LOG" >/dev/null &
        SERVER_PID=$!
        track_pid "$SERVER_PID"
        ;;
    esac
    SERVER_PORT=$port
    wait_http "$port" 15 || {
        cat "$SERVER_LOG" >&2
        [[ $name == nginx* ]] && cat "$BENCH_TMP/nginx-$port/logs/error.log" >&2
        die "$name did not answer 200 on 127.0.0.1:$port"
    }
}

# stop_server NAME PID [SIGNAL] → graceful stop (pounce SIGTERM, nginx SIGQUIT), bounded to 15 s,
# then SIGKILL of the whole process tree; sets SERVER_EXIT.
stop_server() {
    local name=$1 pid=$2 sig=${3:-} i all=()
    [[ -z "$sig" ]] && { [[ $name == nginx* ]] && sig=QUIT || sig=TERM; }
    mapfile -t all < <(descendants "$pid")
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running 15 s after SIG$sig: killing it"
        kill -KILL "${all[@]}" "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    SERVER_EXIT=$?
    untrack_pid "$pid"
}

# CPU seconds (utime+stime) of a process and all its descendants (threads included).
cpu_seconds() { "$PY" "$BENCH_DIR/benchtool.py" cpu "$1"; }
