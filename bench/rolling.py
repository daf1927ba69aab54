#!/usr/bin/env python3
"""A rolling deploy behind a real load balancer: what a new connection should get
from a draining pounce (`--drain-new-connections`).

HAProxy (health checks `inter 200ms fall 1 rise 2` on /health, `retries 3`,
`option redispatch`) balances two pounce backends; the load of bench/upgrade.py
(keep-alive GET / and POST /echo, plus a connection per request) goes through it
while each backend is stopped (SIGTERM, drain, exit) and started again, in turn,
--cycles times. Variants:

  503          the default: a draining pounce answers new connections 503
  refuse       --drain-new-connections refuse: it stops accepting at once, so a
               new connection is refused, which HAProxy redispatches
  delay        --shutdown-delay 1: health answers 503 for 1 s before the drain, so
               HAProxy stops routing there first (the k8s readiness-probe pattern)

Every request the clients attempted is accounted for, as in bench/upgrade.py.
Usage: bench/rolling.py [--rounds 2] [--cycles 3] [--variants 503,refuse,delay]
                        [--pounce target/release/pounce] [--md bench/RESULTS.md]
"""

import argparse
import asyncio
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upgrade as u  # noqa: E402  (the load and its accounting)

MARK_BEGIN = "<!-- kept: rolling -->"
MARK_END = "<!-- /kept: rolling -->"
VARIANTS = {
    "503": [],
    "refuse": ["--drain-new-connections", "refuse"],
    "delay": ["--shutdown-delay", "1"],
}


class Backend:
    def __init__(self, binary, port, extra, log):
        self.binary, self.port, self.extra, self.log = binary, port, extra, log
        self.proc = None

    def start(self):
        args = [self.binary, "demo", "--port", str(self.port), "--workers", "1",
                "--health-check-path", "/health", "--max-connections", "100000"] + self.extra
        self.proc = subprocess.Popen(args, env=u.clean_env(), stdout=subprocess.DEVNULL, stderr=self.log)
        if not u.wait_listening(self.port):
            raise RuntimeError("backend did not start")

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(30)
        if code != 0:
            raise RuntimeError(f"backend exited {code}")


def haproxy_cfg(tmp, front, ports):
    servers = "\n".join(f"    server b{i} 127.0.0.1:{p} check" for i, p in enumerate(ports))
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""
global
    maxconn 4000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    option http-keep-alive
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2
{servers}
""")
    return path


async def run_variant(name, args, tmp):
    log = open(os.path.join(tmp, f"pounce-{name}.log"), "ab")
    ports = [u.free_port(), u.free_port()]
    backends = [Backend(args.pounce, p, VARIANTS[name], log) for p in ports]
    for b in backends:
        b.start()
    front = u.free_port()
    hap = subprocess.Popen(["haproxy", "-db", "-f", haproxy_cfg(tmp, front, ports)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loop = asyncio.get_running_loop()
    try:
        if not u.wait_listening(front):
            raise RuntimeError("haproxy did not start")
        await asyncio.sleep(1.0)  # both backends seen up
        tally, stop = u.Tally(), asyncio.Event()
        clients = [asyncio.create_task(u.keepalive_client(i, front, tally, stop, args.timeout)) for i in range(args.keepalive)]
        clients += [asyncio.create_task(u.fresh_client(front, tally, stop, args.timeout)) for _ in range(args.fresh)]
        await asyncio.sleep(1.0)
        restarts = 0
        for _ in range(args.cycles):
            for b in backends:
                await loop.run_in_executor(None, b.stop)
                await loop.run_in_executor(None, b.start)
                restarts += 1
                await asyncio.sleep(1.2)  # rise 2 x 200 ms, and some
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients, return_exceptions=True), args.timeout + 10)
        return u.summarize(tally, [], restarts) | {"restarts": restarts}
    finally:
        hap.terminate()
        hap.wait(10)
        for b in backends:
            if b.proc and b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()
        log.close()


def report(results, args, meta):
    out = [MARK_BEGIN, "## A rolling deploy behind HAProxy: `--drain-new-connections`", ""]
    out.append(f"Produced by `bench/rolling.py` on {meta['date']} ({meta['machine']}; pounce {meta['commit']}, "
               f"{meta['haproxy']}). HAProxy in front of two pounce backends (1 worker each), health checks "
               f"`inter 200ms fall 1 rise 2` on `/health`, `retries 3`, `option redispatch`; each backend "
               f"stopped (SIGTERM) and started again in turn, {args.cycles} times per run, {args.rounds} run(s) "
               f"per variant, under {args.keepalive} keep-alive clients and {args.fresh} clients opening a "
               f"connection per request, all through HAProxy.")
    out.append("")
    out.append("| variant | requests | failed | failures by kind | backend restarts | p99 ms | max ms |")
    out.append("|---|--:|--:|---|--:|--:|--:|")
    for n in args.variants:
        runs = results.get(n, [])
        if not runs:
            out.append(f"| {n} | could not be run | | | | | |")
            continue
        kinds = {}
        for r in runs:
            for k, v in r["failures"].items():
                kinds[k] = kinds.get(k, 0) + v
        out.append(f"| `{' '.join(VARIANTS[n]) or 'default (503)'}` | {sum(r['requests'] for r in runs):,} | "
                   f"{sum(r['failed'] for r in runs):,} | "
                   f"{', '.join(f'{v} {k}' for k, v in sorted(kinds.items())) or 'none'} | "
                   f"{sum(r['restarts'] for r in runs)} | {u.median([r['p99_ms'] for r in runs]):.1f} | "
                   f"{max(r['max_ms'] for r in runs):.0f} |")
    out.append("")
    out.append("A `503` from a draining backend reaches the client: HAProxy does not retry it unless "
               "told to (`retry-on 503`). A refused connect is retried on the other backend "
               "(`option redispatch`). A shutdown delay takes the backend out of rotation before "
               "anything is refused or answered `503`, at the cost of that delay per restart.")
    out.append(MARK_END)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--keepalive", type=int, default=16)
    ap.add_argument("--fresh", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--variants", default="503,refuse,delay")
    ap.add_argument("--pounce", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "pounce"))
    ap.add_argument("--md", help="replace the rolling section of this markdown file (e.g. bench/RESULTS.md)")
    args = ap.parse_args()
    args.pounce = os.path.abspath(args.pounce)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(args.variants) - set(VARIANTS):
        sys.exit(f"unknown variant(s): {sorted(set(args.variants) - set(VARIANTS))}")
    if not os.access(args.pounce, os.X_OK):
        sys.exit(f"no pounce binary at {args.pounce} (cargo build --release -p pounce-cli)")
    if subprocess.run(["which", "haproxy"], capture_output=True).returncode != 0:
        sys.exit("haproxy is not installed (apt-get install haproxy)")
    results, ok = u.run_rounds(args.variants, args.rounds, lambda name, tmp: run_variant(name, args, tmp),
                               lambda r: f"{r['requests']:>7} requests, {r['failed']:>4} failed {r['failures'] or ''}; "
                               f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms")
    hv = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    meta = u.run_meta(haproxy=" ".join(hv.split()[:3]))
    section = report(results, args, meta)
    print()
    print(section)
    if args.md:
        u.write_md(args.md, section, MARK_BEGIN, MARK_END)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
