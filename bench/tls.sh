#!/usr/bin/env bash
# pounce over TLS vs nginx over TLS: the same ECDSA P-256 certificate (made here with openssl),
# TLS 1.3 and 1.2 on both, the same worker count, runs alternated (pounce, nginx under
# `chrt -b 0`, nginx), medians and ratios.
#
#   bench/tls.sh [--rounds N] [--duration S] [--workers N] [--no-build]
#
# Three measurements per server and round:
#   keep-alive   wrk -t1 -c64 https://…/          requests/s and server CPU per request
#   resumed      h2load --h1 -t1 -c64 -n N -H 'Connection: close' https://…/: a new TLS
#                connection per request (N = 2000 × duration). h2load, like wrk, resumes its
#                session (TLS 1.3 tickets, still with an X25519 exchange): new connections/s and
#                server CPU per connection. (h2load's -D duration mode hangs at its end when the
#                server closes every connection, hence a count.)
#   full         4 × `openssl s_time -new -www /` in parallel: full handshakes (certificate and
#                signature every time), one request each: connections/s and CPU per connection
# The reference is nginx under `chrt -b 0`: SCHED_BATCH, the policy pounce's workers use by
# default (issue #17 compares against it); plain nginx is shown too. Defaults: 3 rounds of 10 s,
# 2 workers. On a 2-vCPU box the client shares the cores and is often the limit: read the
# CPU-per-request columns with the rates. Everything listens on 127.0.0.1; every process started
# here is killed by pid on exit.
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ROUNDS=3 DURATION=10 WORKERS=2 BUILD=1
while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --workers) WORKERS=${2:?}; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
positive_ints ROUNDS DURATION WORKERS

NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
for t in wrk h2load openssl; do command -v "$t" >/dev/null || die "$t is not installed (bench/run.sh installs wrk and h2load; openssl: apt-get install openssl)"; done
[[ -x "$NGINX" ]] || die "nginx is not installed (apt-get install nginx-light)"

bench_init
TMP=$BENCH_TMP
raise_nofile 65536
pounce_binary "$BUILD"

# One CA and one leaf for 127.0.0.1, both ECDSA P-256; the leaf's chain is what both serve.
CERT="$TMP/chain.pem" KEY="$TMP/key.pem"
(
    cd "$TMP" || exit 1
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key &&
        openssl req -new -x509 -key ca.key -out ca.pem -days 2 -subj /CN=bench-ca &&
        openssl ecparam -name prime256v1 -genkey -noout -out leaf.key &&
        openssl req -new -key leaf.key -out leaf.csr -subj /CN=localhost &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf &&
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext.cnf &&
        cat leaf.pem ca.pem >"$CERT" && openssl pkcs8 -topk8 -nocrypt -in leaf.key -out "$KEY"
) >/dev/null 2>&1 || die "openssl could not make the certificate"

declare -A PORT PID

wait_port() {
    local port=$1 pid=$2 i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_nginx NAME [PREFIX...] → PORT[NAME], PID[NAME]. bench/lib.sh's configuration with
# `listen … ssl`, the certificate, TLS 1.2 and 1.3 (nginx's defaults otherwise: session tickets
# on, no session cache, HTTP/1.1 only).
start_nginx() {
    local name=$1 conf port
    shift
    port=$(free_port)
    conf=$(NGINX_LISTEN_OPTS=" ssl" nginx_conf "$TMP/$name" "$port" "$WORKERS" "
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;$NGINX_DEMO_SERVER") || die "cannot write nginx's configuration"
    "$@" "$NGINX" -p "$TMP/$name" -e "$TMP/$name/logs/error.log" -c "$conf" 2>"$TMP/$name/stderr" &
    PORT[$name]=$port PID[$name]=$!
    track_pid "${PID[$name]}"
    wait_port "$port" "${PID[$name]}" || die "$name did not start: $(cat "$TMP/$name/stderr" "$TMP/$name/logs/error.log" 2>/dev/null)"
}
start_nginx nginx
start_nginx nginx-batch chrt -b 0

PORT[pounce]=$(free_port)
"$POUNCE_BIN" demo --port "${PORT[pounce]}" --workers "$WORKERS" --tls-cert "$CERT" --tls-key "$KEY" \
    --keep-alive-timeout "$KEEPALIVE_S" --max-connections "$MAX_CONNS" --backlog "$BACKLOG" \
    --log-level warn 2>"$TMP/pounce.log" &
PID[pounce]=$!
track_pid "${PID[pounce]}"
wait_port "${PORT[pounce]}" "${PID[pounce]}" || die "pounce did not start: $(cat "$TMP/pounce.log")"

SERVERS=(pounce nginx-batch nginx)
for server in "${SERVERS[@]}"; do
    got=$(curl -sS --cacert "$TMP/ca.pem" "https://127.0.0.1:${PORT[$server]}/" 2>&1)
    [[ "$got" == "Hello, World!" ]] || die "$server answered '$got' over https"
done

rps_of() { awk '/^Requests\/sec:/ {print $2; f=1} END {if (!f) print 0}' "$1"; }
# h2load: "finished in 10.00s, 2448.39 req/s, …"
h2_rps_of() { awk '/^finished in/ {gsub(",", "", $4); print $4; f=1} END {if (!f) print 0}' "$1"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
per() { awk -v a="$1" -v b="$2" -v r="$3" -v d="$4" 'BEGIN { if (r > 0) printf "%.1f", (b - a) * 1e6 / (r * d); else print 0 }'; }

log "pounce vs nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') over TLS ($(openssl version | cut -d' ' -f1-2) clients): $WORKERS workers each, ${DURATION}s runs, $ROUNDS rounds alternated, $(nproc) CPUs"
declare -A KA KACPU HS HSCPU FULL FULLCPU
for server in "${SERVERS[@]}"; do  # warm-up
    run_client 40 wrk -t1 -c64 -d2s "https://127.0.0.1:${PORT[$server]}/" >/dev/null 2>&1
done
for ((round = 1; round <= ROUNDS; round++)); do
    for server in "${SERVERS[@]}"; do
        port=${PORT[$server]} pid=${PID[$server]}
        out="$TMP/$server-ka-$round.txt"
        c0=$(cpu_seconds "$pid")
        run_client $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" "https://127.0.0.1:$port/" >"$out" 2>&1
        c1=$(cpu_seconds "$pid")
        r=$(rps_of "$out") cpu=$(per "$c0" "$c1" "$(rps_of "$out")" "$DURATION")
        errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ' ')
        log "round $round $server keep-alive: $r req/s, $cpu µs CPU/request $errs"
        KA[$server]+="$r " KACPU[$server]+="$cpu "

        out="$TMP/$server-hs-$round.txt"
        c0=$(cpu_seconds "$pid")
        n=$((DURATION * 2000))
        run_client $((DURATION * 10 + 30)) h2load --h1 -t1 -c64 -n "$n" -H 'Connection: close' \
            "https://127.0.0.1:$port/" >"$out" 2>&1
        c1=$(cpu_seconds "$pid")
        r=$(h2_rps_of "$out") cpu=$(per "$c0" "$c1" "$n" 1)
        fails=$(grep -E '^requests:' "$out" | sed 's/.*succeeded, //')
        log "round $round $server resumed handshakes: $r new connections/s, $cpu µs CPU/connection ($fails)"
        HS[$server]+="$r " HSCPU[$server]+="$cpu "

        c0=$(cpu_seconds "$pid")
        st=()
        for i in 1 2 3 4; do
            timeout -k 5 $((DURATION + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" \
                -www / >"$TMP/$server-full-$round-$i.txt" 2>&1 &
            st+=($!)
            track_pid "${st[-1]}"
        done
        for i in "${st[@]}"; do wait "$i"; untrack_pid "$i"; done
        c1=$(cpu_seconds "$pid")
        n=$(cat "$TMP/$server-full-$round-"*.txt | awk '/connections in .* real seconds/ {n += $1} END {print n + 0}')
        r=$(awk -v n="$n" -v d="$DURATION" 'BEGIN {printf "%.0f", n / d}')
        cpu=$(per "$c0" "$c1" "$n" 1)
        log "round $round $server full handshakes: $r new connections/s, $cpu µs CPU/connection"
        FULL[$server]+="$r " FULLCPU[$server]+="$cpu "
    done
done

ratio() { awk -v p="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", p / n; else print "n/a" }'; }
printf '\n%-24s %-12s %12s %12s %7s %12s %12s %7s\n' measurement vs pounce theirs ratio \
    "pounce µs" "their µs" ratio
for m in ka hs full; do
    case $m in
    ka) label="keep-alive req/s" ;;
    hs) label="resumed conns/s" ;;
    full) label="full-handshake conns/s" ;;
    esac
    for other in nginx-batch nginx; do
        case $m in
        ka)
            p=$(median <<<"${KA[pounce]}") n=$(median <<<"${KA[$other]}")
            pc=$(median <<<"${KACPU[pounce]}") nc=$(median <<<"${KACPU[$other]}") ;;
        hs)
            p=$(median <<<"${HS[pounce]}") n=$(median <<<"${HS[$other]}")
            pc=$(median <<<"${HSCPU[pounce]}") nc=$(median <<<"${HSCPU[$other]}") ;;
        full)
            p=$(median <<<"${FULL[pounce]}") n=$(median <<<"${FULL[$other]}")
            pc=$(median <<<"${FULLCPU[pounce]}") nc=$(median <<<"${FULLCPU[$other]}") ;;
        esac
        printf '%-24s %-12s %12.0f %12.0f %7s %12.1f %12.1f %7s\n' "$label" "$other" "$p" "$n" \
            "$(ratio "$p" "$n")" "$pc" "$nc" "$(ratio "$pc" "$nc")"
    done
done
echo "(medians of $ROUNDS runs; ratio = pounce / theirs: higher rates and lower server CPU per"
echo " request or connection are better for pounce; nginx-batch is nginx under chrt -b 0)"
