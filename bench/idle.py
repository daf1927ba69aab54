#!/usr/bin/env python3
"""One server lifecycle with N idle keep-alive connections, for bench/run.sh.

  idle.py --server NAME --port P --conns N --signal TERM --round R --results FILE \
          --pidfile FILE --log FILE -- CMD ARGS...

1. exec → first 200: starts CMD (which must listen on 127.0.0.1:P) and polls GET / tightly
   (a refused connect is retried after ~0.1 ms) until it answers 200. The clock starts just
   before the fork/exec.
2. Baseline RSS of the server's process tree (VmRSS summed over the process and all its
   descendants — nginx master + workers; pounce is one process).
3. Opens N connections (at most --concurrency connects in flight), each sends one
   `GET /` keep-alive request and reads the whole response, then stays open and idle.
4. After --settle seconds, RSS again: (RSS − baseline) / N is the memory per idle connection.
5. Sends --signal to the server and times signal → process exit (waitpid in its own thread,
   so the clock is not delayed by the event loop handling thousands of closes).

Appends JSON lines to --results (scenario "idle-N" and "startup") and prints a summary.
Everything is bounded in time; the server is killed on any failure or signal.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchtool import append_results, kill_tree, rss_kib  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def first_200(proc: subprocess.Popen, port: int, deadline: float) -> float | None:
    """Poll until GET / answers 200; returns the monotonic time of that answer."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(2.0)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            if re.match(rb"HTTP/1\.[01] 200", buf):
                return time.monotonic()
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.0001)
    return None


class Idle:
    def __init__(self, port: int, n: int, concurrency: int):
        self.port, self.n = port, n
        self.sem = asyncio.Semaphore(concurrency)
        self.writers: list[asyncio.StreamWriter] = []
        self.watchers: list[asyncio.Task] = []
        self.failed = 0
        self.closed_at: list[float] = []  # monotonic time each connection saw the server close

    async def _open_one(self) -> None:
        for attempt in range(3):
            try:
                async with self.sem:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), 10)
                    writer.write(REQUEST)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    if not re.match(rb"HTTP/1\.[01] 200", head):
                        raise OSError("non-200 answer: " + head[:40].decode("latin-1"))
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    if m:
                        await asyncio.wait_for(reader.readexactly(int(m.group(1))), 10)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                if attempt == 2:
                    self.failed += 1
                    if self.failed <= 3:
                        print(f"idle.py: connection failed: {e!r}", file=sys.stderr)
                    return
                await asyncio.sleep(0.1)
                continue
            self.writers.append(writer)
            self.watchers.append(asyncio.ensure_future(self._watch(reader, writer)))
            return

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass
        self.closed_at.append(time.monotonic())
        writer.close()

    async def open_all(self) -> None:
        await asyncio.gather(*(self._open_one() for _ in range(self.n)))

    def close_all(self) -> None:
        for w in self.writers:
            w.close()
        for t in self.watchers:
            t.cancel()


async def run(a: argparse.Namespace, proc: subprocess.Popen, t_spawn: float) -> dict:
    out: dict = {}
    loop = asyncio.get_running_loop()
    t200 = await loop.run_in_executor(None, first_200, proc, a.port, time.monotonic() + a.start_timeout)
    if t200 is None:
        raise RuntimeError(f"{a.server} never answered 200 on 127.0.0.1:{a.port}")
    out["startup_ms"] = (t200 - t_spawn) * 1e3
    await asyncio.sleep(a.settle)  # let every worker finish starting
    base = rss_kib(proc.pid)

    idle = Idle(a.port, a.conns, a.concurrency)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(idle.open_all(), a.open_timeout)
    except asyncio.TimeoutError:
        print(f"idle.py: opening {a.conns} connections took over {a.open_timeout}s", file=sys.stderr)
    ok = len(idle.writers)
    out["open_s"] = time.monotonic() - t0
    out["conns_ok"] = ok
    out["conns_failed"] = a.conns - ok
    await asyncio.sleep(a.settle)
    rss = rss_kib(proc.pid)
    out["rss_base_kib"] = base
    out["rss_kib"] = rss
    if ok:
        out["rss_per_conn_kib"] = (rss - base) / ok
    out["closed_before_signal"] = len(idle.closed_at)

    # Signal → exit, timed by a thread blocked in waitpid(2). (Not
    # Popen.wait(timeout=...): that polls, sleeping up to 50 ms between
    # looks, which would add up to 50 ms to every figure.)
    done: dict = {}

    def waiter() -> None:
        _, status = os.waitpid(proc.pid, 0)
        done["t"] = time.monotonic()
        done["rc"] = os.waitstatus_to_exitcode(status)

    th = threading.Thread(target=waiter, daemon=True)
    t_sig = time.monotonic()
    proc.send_signal(getattr(signal, "SIG" + a.signal))
    th.start()
    while th.is_alive() and time.monotonic() - t_sig < a.exit_timeout:
        await asyncio.sleep(0.01)
    if th.is_alive():
        print(f"idle.py: {a.server} still running {a.exit_timeout}s after SIG{a.signal}", file=sys.stderr)
        kill_tree(proc.pid)
        th.join(10)
        out["exit_code"] = -9
    else:
        proc.returncode = done["rc"]  # reaped by the waiter, not by Popen
        out["exit_ms"] = (done["t"] - t_sig) * 1e3
        out["exit_code"] = done["rc"]
    await asyncio.sleep(0.05)  # let the watchers see the last closes
    after = [t for t in idle.closed_at if t >= t_sig]
    out["closed_after_signal"] = len(after)
    if after:
        out["last_close_ms"] = (max(after) - t_sig) * 1e3
    idle.close_all()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--signal", default="TERM", choices=["TERM", "QUIT", "INT", "KILL"])
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--results", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--start-timeout", type=float, default=15.0)
    ap.add_argument("--open-timeout", type=float, default=120.0)
    ap.add_argument("--exit-timeout", type=float, default=30.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no server command after --")

    # A TERM/INT (run.sh's trap, Ctrl-C) kills the server and exits at once.
    spawned: list[subprocess.Popen] = []

    def bail(signum, _frame):
        for p in spawned:
            if p.poll() is None:
                kill_tree(p.pid, grace=2.0)
                p.wait()
        try:
            os.unlink(a.pidfile)
        except OSError:
            pass
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, bail)
    signal.signal(signal.SIGINT, bail)

    logf = open(a.log, "wb")
    t_spawn = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    spawned.append(proc)
    with open(a.pidfile, "w") as f:
        f.write(str(proc.pid))
    try:
        out = asyncio.run(run(a, proc, t_spawn))
    except Exception as e:  # noqa: BLE001 — report and fail
        print(f"idle.py: {a.server} with {a.conns} idle connections: {e}", file=sys.stderr)
        return 1
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        logf.close()
        try:
            os.unlink(a.pidfile)
        except OSError:
            pass

    startup = out.pop("startup_ms")
    append_results(a.results, a.server, a.round, "startup", {"first_200_ms": startup})
    append_results(a.results, a.server, a.round, f"idle-{a.conns}", out)
    parts = [f"startup={startup:.1f}ms"] + [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()]
    print(f"{a.server:6s} idle-{a.conns:<11d} " + " ".join(parts), file=sys.stderr)
    return 0 if out.get("conns_ok") and "exit_ms" in out else 1


if __name__ == "__main__":
    sys.exit(main())
