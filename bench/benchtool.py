#!/usr/bin/env python3
"""Small helpers for bench/run.sh: /proc accounting, HTTP polling, wrk/h2load output parsing.

Subcommands (all talk to 127.0.0.1 only, all bounded in time):
  free-port                         print a free TCP port on 127.0.0.1
  wait-http PORT [--timeout S]      poll GET / until it answers 200 (exit 1 on timeout)
  cpu PID                           utime+stime (seconds) of PID and all its descendants
  rss PID                           VmRSS (KiB) summed over PID and all its descendants
  descendants PID...                the PIDs and all their descendants, one a line
  record-wrk FILE ...               parse a `wrk --latency` output, append metrics to --results
  record-h2load FILE ...            parse an `h2load` output, append metrics to --results
  scrape-loop PORT --every S --for S  GET /metrics every S seconds for S seconds (a Prometheus
                                    stand-in during a measurement); exit 1 if any scrape failed
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------
# /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onward)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """root and all its descendants (by walking ppid links in /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def kill_tree(root: int, grace: float = 3.0) -> None:
    """SIGTERM root and all its descendants (found before signalling, so nginx workers are not
    orphaned when their master goes), wait up to `grace` s, then SIGKILL whatever is left."""
    import signal

    pids = process_tree(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return
        time.sleep(0.02)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cpu_seconds(root: int) -> float:
    """utime+stime of every process in the tree. /proc/PID/stat's utime/stime already cover all
    threads of a process (live and exited), so pounce's executor threads are included."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # fields[0] is state (field 3); utime is field 14, stime field 15.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_kib(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


# ------------------------------------------------------------------------------------------
# HTTP


def get_status(port: int, path: str = "/", timeout: float = 2.0) -> int | None:
    """One GET with Connection: close; the status code, or None if it could not be had."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            buf = b""
            while b"\r\n" not in buf and len(buf) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return int(m.group(1)) if m else None


def wait_http(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_status(port) == 200:
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------------------------
# Output parsing

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _dur_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str) -> dict:
    out: dict = {}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", text, re.M)
    if not m:
        raise ValueError("no 'N requests in' line in wrk output")
    out["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if not m:
        raise ValueError("no Requests/sec line in wrk output")
    out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+(?:us|ms|s|m|h))\s*$", text, re.M)
        if m:
            out[key] = _dur_ms(m.group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    out["errors"] = errors
    return out


def parse_h2load(text: str) -> dict:
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if not m:
        raise ValueError("no 'finished in' line in h2load output")
    out: dict = {"rps": float(m.group(1))}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        out["requests"] = int(m.group(4))
        out["errors"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        out["errors"] = out.get("errors", 0) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["mean_ms"] = _dur_ms(m.group(3))
    return out


def append_results(path: str, server: str, rnd: int, scenario: str, metrics: dict) -> None:
    with open(path, "a") as f:
        for k, v in metrics.items():
            f.write(json.dumps({"round": rnd, "server": server, "scenario": scenario,
                                "metric": k, "value": v}) + "\n")


def _summary(server: str, scenario: str, metrics: dict) -> str:
    parts = []
    for k, v in metrics.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return f"{server:6s} {scenario:16s} " + " ".join(parts)


# ------------------------------------------------------------------------------------------


def scrape_loop(port: int, every: float, duration: float) -> int:
    """GET /metrics every `every` s for `duration` s; prints the count; 1 if any failed."""
    end = time.monotonic() + duration
    ok = failed = 0
    while time.monotonic() < end:
        t = time.monotonic()
        if get_status(port, "/metrics", timeout=2.0) == 200:
            ok += 1
        else:
            failed += 1
            print("scrape failed", flush=True)  # one line each: the loop may be killed before the end
        time.sleep(max(0.0, every - (time.monotonic() - t)))
    print(f"scrapes: {ok} ok, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port")
    p = sub.add_parser("wait-http")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=15.0)
    p = sub.add_parser("cpu")
    p.add_argument("pid", type=int)
    p = sub.add_parser("rss")
    p.add_argument("pid", type=int)
    p = sub.add_parser("descendants", help="PIDs (and their descendants), one a line")
    p.add_argument("pid", type=int, nargs="+")
    p = sub.add_parser("scrape-loop")
    p.add_argument("port", type=int)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--for", dest="duration", type=float, required=True)
    for name in ("record-wrk", "record-h2load"):
        p = sub.add_parser(name)
        p.add_argument("file")
        p.add_argument("--results", required=True)
        p.add_argument("--server", required=True)
        p.add_argument("--round", type=int, required=True)
        p.add_argument("--scenario", required=True)
        p.add_argument("--cpu-before", type=float)
        p.add_argument("--cpu-after", type=float)
    a = ap.parse_args(argv)

    if a.cmd == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    elif a.cmd == "wait-http":
        return 0 if wait_http(a.port, a.timeout) else 1
    elif a.cmd == "cpu":
        print(f"{cpu_seconds(a.pid):.2f}")
    elif a.cmd == "rss":
        print(rss_kib(a.pid))
    elif a.cmd == "scrape-loop":
        return scrape_loop(a.port, a.every, a.duration)
    elif a.cmd == "descendants":
        seen: list[int] = []
        for root in a.pid:
            seen += [p for p in process_tree(root) if p not in seen and (p == root or _alive(p))]
        print("\n".join(map(str, seen)))
    else:
        with open(a.file, errors="replace") as f:
            text = f.read()
        try:
            metrics = parse_wrk(text) if a.cmd == "record-wrk" else parse_h2load(text)
        except ValueError as e:
            print(f"benchtool: {a.file}: {e}", file=sys.stderr)
            return 1
        if a.cpu_before is not None and a.cpu_after is not None and metrics.get("requests"):
            metrics["cpu_us_per_req"] = (a.cpu_after - a.cpu_before) * 1e6 / metrics["requests"]
        append_results(a.results, a.server, a.round, a.scenario, metrics)
        print(_summary(a.server, a.scenario, metrics), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
