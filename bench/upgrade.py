#!/usr/bin/env python3
"""Restarts and upgrades on one host, under load: what each way costs.

Each scenario starts a fresh server, puts the same load on it, restarts it
--restarts times, and accounts for every request the clients attempted:

  pounce-upgrade  hot upgrade: `kill -USR2 <pid in the pid file>`; the successor
                  takes over the listening sockets and the old process drains
  pounce-socket   socket activation: this script holds the listening socket, as
                  systemd does with pounce.socket; SIGTERM, wait for the exit, start
                  the next instance on the same socket (`systemctl restart`)
  pounce-restart  SIGTERM, wait for the exit, start again on the same port (what
                  there was before: nothing listens in between)
  nginx-upgrade   nginx's binary upgrade: `kill -USR2 <master>`, wait for the new
                  master's pid file, `kill -QUIT <old master>`

Load (the same for all): --keepalive clients looping GET / and POST /echo (1 KiB
body) on one connection each, reconnecting after `Connection: close`, and
--fresh clients opening a new connection per request (GET /, Connection: close).

A request fails when: the connect is refused or fails, the connection is reset or
closed before a complete response, no response comes within --timeout, or the
status is not 2xx (a 503 included). Latency is per request, from sending it (or
connecting, for fresh connections) to the end of the response:
  steady p99     requests that did not overlap any restart
  handover p99 / max   requests in flight from each restart's signal until 1 s
                 after it completed (the new process serving)

Scenarios alternate within each round. Usage:
  bench/upgrade.py [--rounds 3] [--restarts 3] [--interval 2] [--keepalive 16] [--fresh 4]
                   [--pounce target/release/pounce] [--nginx /usr/sbin/nginx]
                   [--scenarios pounce-upgrade,pounce-socket,pounce-restart,nginx-upgrade]
                   [--md bench/RESULTS.md] [--json out.json]
With --md, the section between the `upgrade` markers of that file is replaced (or
appended). Exit status 0 when every scenario ran (whatever its failures), 1 if one
could not be run.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drain import read_response  # noqa: E402  (one HTTP/1.1 response reader for the harnesses)

BODY = b"x" * 1024
MARK_BEGIN = "<!-- kept: upgrade -->"
MARK_END = "<!-- /kept: upgrade -->"


# ---------------------------------------------------------------- the load


class Tally:
    def __init__(self):
        self.samples = []  # (start, end) of every complete 2xx request
        self.failures = {}  # kind -> count
        self.fail_times = []

    def fail(self, kind, at):
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.fail_times.append(at)


async def request(reader, writer, req, timeout):
    """Sends `req`, reads the whole response: (status, whether it closes)."""
    writer.write(req)
    await writer.drain()
    status, _, close = await asyncio.wait_for(read_response(reader), timeout)
    return status, close


def classify(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(e, (EOFError, asyncio.IncompleteReadError)):
        return "eof"
    return type(e).__name__


async def keepalive_client(n, port, tally, stop, timeout):
    reader = writer = None
    while not stop.is_set():
        n += 1
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                tally.fail(classify(e), time.monotonic())
                await asyncio.sleep(0.01)
                continue
        if n % 2:
            req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        else:
            req = b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
        t0 = time.monotonic()
        try:
            status, close = await request(reader, writer, req, timeout)
        except Exception as e:  # noqa: BLE001
            tally.fail(classify(e), t0)
            writer.close()
            writer = None
            continue
        if 200 <= status < 300:
            tally.samples.append((t0, time.monotonic()))
        else:
            tally.fail(str(status), t0)
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def fresh_client(port, tally, stop, timeout):
    req = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        t0 = time.monotonic()
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            status, _ = await request(reader, writer, req, timeout)
        except Exception as e:  # noqa: BLE001
            tally.fail(classify(e), t0)
            if writer is not None:
                writer.close()
            await asyncio.sleep(0.01)
            continue
        writer.close()
        if 200 <= status < 300:
            tally.samples.append((t0, time.monotonic()))
        else:
            tally.fail(str(status), t0)


# ---------------------------------------------------------------- servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    drop = ("SHUTDOWN_TIMEOUT", "RUST_LOG", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    return {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_") and k not in drop}


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    return not alive(pid)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.005)
    return False


class Pounce:
    """One pounce lineage on one port: started, restarted the scenario's way, stopped."""

    def __init__(self, binary, workers, mode, tmp):
        self.binary, self.workers, self.mode, self.tmp = binary, workers, mode, tmp
        self.pid_file = os.path.join(tmp, "pounce.pid")
        self.log = open(os.path.join(tmp, f"pounce-{mode}.log"), "ab")
        self.held = None
        self.procs = []
        self.started = 0
        if mode == "pounce-socket":
            self.held = socket.socket()
            self.held.bind(("127.0.0.1", 0))
            self.held.listen(4096)
            self.port = self.held.getsockname()[1]
        else:
            self.port = free_port()

    def listening_lines(self):
        with open(self.log.name, "rb") as f:
            return f.read().count(b"] Listening on http://")

    def start(self):
        args = ["demo", "--workers", str(self.workers), "--max-connections", "100000"]
        env = clean_env()
        if self.mode == "pounce-socket":
            fd = self.held.fileno()
            env["LISTEN_FDS"] = "1"
            p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', self.binary] + args,
                                 env=env, stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=(3,),
                                 preexec_fn=lambda: os.dup2(fd, 3))
        else:
            args += ["--port", str(self.port), "--pid-file", self.pid_file]
            p = subprocess.Popen([self.binary] + args, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.procs.append(p)
        # Ready once it logs `Listening on` (with a held socket, connecting
        # succeeds before any process serves it).
        deadline = time.monotonic() + 10
        while self.listening_lines() < self.started + 1:
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"{self.mode}: pounce did not start (log: {self.log.name})")
            time.sleep(0.002)
        self.started += 1
        if self.mode != "pounce-socket":
            deadline = time.monotonic() + 5
            while read_pid(self.pid_file) != p.pid and time.monotonic() < deadline:
                time.sleep(0.002)
        self.pid = p.pid

    def restart(self):
        """Restarts the scenario's way; returns when the new process serves."""
        old = self.pid
        if self.mode == "pounce-upgrade":
            os.kill(old, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                new = read_pid(self.pid_file)
                if new and new != old:
                    self.pid = new
                    self.started += 1
                    return
                time.sleep(0.002)
            raise RuntimeError("pounce-upgrade: no successor took over")
        os.kill(old, signal.SIGTERM)
        if not wait_gone(old, 30):
            raise RuntimeError(f"{self.mode}: pounce did not exit")
        self.start()

    def stop(self):
        for pid in {self.pid, read_pid(self.pid_file)} - {None}:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
                if not wait_gone(pid, 20):
                    os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if self.held:
            self.held.close()
        self.log.close()


class Nginx:
    def __init__(self, binary, workers, tmp):
        self.binary, self.tmp = binary, tmp
        self.port = free_port()
        self.pid_file = os.path.join(tmp, "nginx.pid")
        self.conf = os.path.join(tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
worker_processes {workers};
# The binary upgrade needs a daemonized master: a master whose parent is
# still alive takes itself for a new binary and ignores USR2.
pid {self.pid_file};
error_log {tmp}/error.log warn;
events {{ worker_connections 10240; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port} reuseport;
        location = / {{ default_type text/plain; return 200 "Hello, World!"; }}
        location = /echo {{ default_type text/plain; return 200 "ok"; }}
    }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-p", self.tmp, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.wait(10)
        if not wait_listening(self.port):
            raise RuntimeError("nginx did not start")
        deadline = time.monotonic() + 5
        while read_pid(self.pid_file) is None and time.monotonic() < deadline:
            time.sleep(0.002)
        self.pid = read_pid(self.pid_file)

    def restart(self):
        old = self.pid
        os.kill(old, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = read_pid(self.pid_file)
            if new and new != old and os.path.exists(self.pid_file + ".oldbin"):
                break
            time.sleep(0.002)
        else:
            raise RuntimeError("nginx-upgrade: no new master")
        # Its workers start right after the master writes its pid.
        time.sleep(0.05)
        os.kill(old, signal.SIGQUIT)
        self.pid = new
        if not wait_gone(old, 30):
            raise RuntimeError("nginx-upgrade: old master did not exit")

    def stop(self):
        for pid in {self.pid, read_pid(self.pid_file)} - {None}:
            if alive(pid):
                os.kill(pid, signal.SIGQUIT)
                if not wait_gone(pid, 20):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-f", f"nginx.*{self.conf}"], check=False)


# ---------------------------------------------------------------- one run


async def run_scenario(name, args, tmp):
    server = Nginx(args.nginx, args.workers, tmp) if name == "nginx-upgrade" else Pounce(args.pounce, args.workers, name, tmp)
    loop = asyncio.get_running_loop()
    server.start()
    tally, stop = Tally(), asyncio.Event()
    clients = [asyncio.create_task(keepalive_client(i, server.port, tally, stop, args.timeout)) for i in range(args.keepalive)]
    clients += [asyncio.create_task(fresh_client(server.port, tally, stop, args.timeout)) for _ in range(args.fresh)]
    windows = []
    try:
        await asyncio.sleep(args.interval)
        for _ in range(args.restarts):
            t0 = time.monotonic()
            await loop.run_in_executor(None, server.restart)
            t1 = time.monotonic()
            windows.append((t0, t1 + 1.0, t1 - t0))
            await asyncio.sleep(args.interval)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients, return_exceptions=True), args.timeout + 10)
        await loop.run_in_executor(None, server.stop)
    return summarize(tally, windows, args.restarts)


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100 * len(sorted_vals)))]


def summarize(tally, windows, restarts):
    def overlaps(s, e):
        return any(s < w1 and e > w0 for w0, w1, _ in windows)

    every = sorted(e - s for s, e in tally.samples)
    steady = sorted(e - s for s, e in tally.samples if not overlaps(s, e))
    handover = sorted(e - s for s, e in tally.samples if overlaps(s, e))
    failed = sum(tally.failures.values())
    return {
        "requests": len(tally.samples) + failed,
        "ok": len(tally.samples),
        "failed": failed,
        "failed_per_restart": failed / max(1, restarts),
        "failures": dict(sorted(tally.failures.items())),
        "steady_p50_ms": pct(steady, 50) * 1e3,
        "steady_p99_ms": pct(steady, 99) * 1e3,
        "handover_p99_ms": pct(handover, 99) * 1e3,
        "handover_max_ms": (handover[-1] if handover else float("nan")) * 1e3,
        "restart_s": [round(w[2], 4) for w in windows],
        "p99_ms": pct(every, 99) * 1e3,
        "max_ms": (every[-1] if every else float("nan")) * 1e3,
    }


# ---------------------------------------------------------------- report


def median(xs):
    xs = sorted(x for x in xs if x == x)
    return xs[len(xs) // 2] if xs else float("nan")


def report(results, args, meta):
    names = [s for s in args.scenarios if s in results]
    out = [MARK_BEGIN, "## Restarts and upgrades on one host", ""]
    out.append(f"Produced by `bench/upgrade.py` on {meta['date']} ({meta['machine']}; pounce {meta['commit']}, "
               f"{meta['nginx']}). {args.rounds} round(s), scenarios alternated within each; per run a fresh "
               f"server with {args.workers} workers, {args.restarts} restarts {args.interval:g} s apart under "
               f"{args.keepalive} keep-alive clients (GET / and POST /echo, 1 KiB) and {args.fresh} clients "
               f"opening a connection per request. Failures are summed over all runs; latencies are medians "
               f"over runs.")
    out.append("")
    out.append("| scenario | requests | failed | failed per restart | failures by kind | steady p99 ms | "
               "handover p99 ms | handover max ms | restart took s |")
    out.append("|---|--:|--:|--:|---|--:|--:|--:|--:|")
    for n in names:
        runs = results[n]
        if not runs:
            out.append(f"| {n} | could not be run | | | | | | | |")
            continue
        req = sum(r["requests"] for r in runs)
        failed = sum(r["failed"] for r in runs)
        kinds = {}
        for r in runs:
            for k, v in r["failures"].items():
                kinds[k] = kinds.get(k, 0) + v
        kind_s = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "none"
        took = median([t for r in runs for t in r["restart_s"]])
        out.append(f"| {n} | {req:,} | {failed:,} | {failed / (args.restarts * len(runs)):.1f} | {kind_s} | "
                   f"{median([r['steady_p99_ms'] for r in runs]):.2f} | "
                   f"{median([r['handover_p99_ms'] for r in runs]):.2f} | "
                   f"{median([r['handover_max_ms'] for r in runs]):.1f} | {took:.3f} |")
    out.append("")
    out.append("""- **pounce-upgrade**: `kill -USR2`; the successor inherits the listening sockets and reports
  ready, then the old process stops accepting (closing no socket) and drains. "restart took" is
  signal → the pid file names the successor.
- **pounce-socket**: the harness holds the socket (as systemd with `pounce.socket`) and runs
  SIGTERM → exit → start; connections arriving meanwhile wait in the socket's queue. "restart
  took" is signal → the new process listening, which includes the old one's drain (busy
  keep-alive connections close after their next response; an idle one would hold the drain
  for its 1 s grace).
- **pounce-restart**: SIGTERM → exit → start on the same port; in between, connects are refused.
- **nginx-upgrade**: nginx's binary upgrade, `kill -USR2` then `kill -QUIT` of the old master
  once the new one has written its pid file. nginx's old workers close idle keep-alive
  connections at once, racing requests already on their way.
- handover p99/max: requests in flight from each restart's signal until 1 s after it completed;
  steady p99: requests that overlapped no restart. The difference is the latency a restart adds.""")
    out.append(MARK_END)
    return "\n".join(out)


def write_md(path, section, begin=MARK_BEGIN, end=MARK_END):
    """Replaces the block between `begin` and `end` in `path`, or appends it."""
    old = open(path).read() if os.path.exists(path) else ""
    if begin in old and end in old:
        a = old.index(begin)
        b = old.index(end) + len(end)
        new = old[:a] + section + old[b:]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(new)


def run_rounds(names, rounds, run_one, describe):
    """Runs `run_one(name, tmpdir)` (a coroutine) for every name, `rounds` times,
    alternating the order from one round to the next; a run that fails is
    reported with its server logs and left out. Returns ({name: [result]}, ok)."""
    results, ok = {n: [] for n in names}, True
    for rnd in range(1, rounds + 1):
        for name in (names if rnd % 2 else list(reversed(names))):
            with tempfile.TemporaryDirectory(prefix=f"pounce-bench-{name}-") as tmp:
                try:
                    r = asyncio.run(run_one(name, tmp))
                except Exception as e:  # noqa: BLE001
                    ok = False
                    print(f"round {rnd} {name}: FAILED TO RUN: {e}", file=sys.stderr)
                    for f in os.listdir(tmp):
                        if f.endswith(".log"):
                            print(open(os.path.join(tmp, f)).read()[-2000:], file=sys.stderr)
                    continue
            results[name].append(r)
            print(f"round {rnd} {name:15} {describe(r)}", flush=True)
    return results, ok


def run_meta(**tools):
    """Date, machine and commit for a report, plus the tools' versions."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "commit": commit, **tools}


def machine():
    cpu = "?"
    try:
        m = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
        cpu = m.group(1).strip() if m else "?"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} vCPU, kernel {os.uname().release}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds of load before, between and after restarts")
    ap.add_argument("--keepalive", type=int, default=16)
    ap.add_argument("--fresh", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request client timeout")
    ap.add_argument("--pounce", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "pounce"))
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--scenarios", default="pounce-upgrade,pounce-socket,pounce-restart,nginx-upgrade")
    ap.add_argument("--md", help="replace the upgrade section of this markdown file (e.g. bench/RESULTS.md)")
    ap.add_argument("--json", help="write every run's numbers here")
    args = ap.parse_args()
    args.pounce = os.path.abspath(args.pounce)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    known = {"pounce-upgrade", "pounce-socket", "pounce-restart", "nginx-upgrade"}
    if set(args.scenarios) - known:
        sys.exit(f"unknown scenario(s): {sorted(set(args.scenarios) - known)}")
    if not os.access(args.pounce, os.X_OK):
        sys.exit(f"no pounce binary at {args.pounce} (cargo build --release -p pounce-cli)")
    if "nginx-upgrade" in args.scenarios and not os.access(args.nginx, os.X_OK):
        sys.exit(f"no nginx at {args.nginx} (apt-get install nginx-light), or drop nginx-upgrade from --scenarios")
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    def describe(r):
        return (f"{r['requests']:>7} requests, {r['failed']:>4} failed {r['failures'] or ''}; "
                f"p99 steady {r['steady_p99_ms']:.2f} ms, handover {r['handover_p99_ms']:.2f} ms "
                f"(max {r['handover_max_ms']:.1f}); restarts took {r['restart_s']}")

    results, ok = run_rounds(args.scenarios, args.rounds, lambda name, tmp: run_scenario(name, args, tmp), describe)
    nginx_v = subprocess.run([args.nginx, "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "") \
        if os.access(args.nginx, os.X_OK) else "no nginx"
    meta = run_meta(nginx=nginx_v)
    section = report(results, args, meta)
    print()
    print(section)
    if args.md:
        write_md(args.md, section)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items()}, "results": results}, f, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
