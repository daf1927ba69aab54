#!/usr/bin/env python3
"""What `--metrics-addr` costs: pounce with metrics off and on, back to back.

Each round starts a fresh pounce with metrics off and one with metrics on (the
order swaps every round, so drift favours neither), and measures on each:
  plaintext   wrk -t1 -c64 on /: req/s and server CPU per request
  pipelined   h2load --h1 -t1 -c64 -m16 on /: req/s and server CPU per request
While metrics are on, /metrics is scraped every second (Prometheus' default
is every 15 s), so the cost of being read is in the figures too.

On a shared machine one measurement drifts by more than the cost being
measured, so the estimate is the median over rounds of the on/off ratio of the
two back-to-back runs (a paired comparison), with every round's ratio listed.
bench/run.sh measures the same thing in 3 rounds; this runs more of them.

Usage: bench/metrics_cost.py [--rounds 10] [--duration 6] [--workers 2]
                             [--pounce target/release/pounce] [--md bench/RESULTS.md]
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upgrade as u  # noqa: E402  (server helpers and the markdown block writer)

MARK_BEGIN = "<!-- kept: metrics-cost -->"
MARK_END = "<!-- /kept: metrics-cost -->"
BUDGET = 0.03


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def start(binary, workers, metrics):
    port = u.free_port()
    args = [binary, "demo", "--port", str(port), "--workers", str(workers), "--max-connections", "100000"]
    mport = None
    if metrics:
        mport = u.free_port()
        args += ["--metrics-addr", f"127.0.0.1:{mport}"]
    p = subprocess.Popen(args, env=u.clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not u.wait_listening(port) or (mport and not u.wait_listening(mport)):
        p.kill()
        raise RuntimeError("pounce did not start")
    return p, port, mport


def scraper(mport, stop):
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", mport), timeout=2) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n")
                while s.recv(65536):
                    pass
        except OSError:
            pass
        stop.wait(1.0)


def measure(cmd, pid, parse):
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    cpu = cpu_seconds(pid) - before
    rps, total = parse(out)
    return rps, (cpu / total * 1e6) if total else float("nan")


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, total


def parse_h2load(out):
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    total = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    return float(m.group(1)), total


def one(binary, args, metrics):
    p, port, mport = start(binary, args.workers, metrics)
    stop = threading.Event()
    t = None
    try:
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t1", "-c64", "-d2s", url], capture_output=True, timeout=60)
        if mport:
            t = threading.Thread(target=scraper, args=(mport, stop), daemon=True)
            t.start()
        plain = measure(["wrk", "-t1", "-c64", f"-d{args.duration}s", url], p.pid, parse_wrk)
        piped = measure(["h2load", "--h1", "-t1", "-c64", "-m16", "-D", str(args.duration), url], p.pid, parse_h2load)
        return {"plain_rps": plain[0], "plain_cpu": plain[1], "piped_rps": piped[0], "piped_cpu": piped[1]}
    finally:
        stop.set()
        if t:
            t.join(5)
        p.terminate()
        p.wait(30)


ROWS = [
    ("plain_rps", "plaintext `wrk -c64` req/s", "higher"),
    ("plain_cpu", "server CPU per request, plaintext (µs)", "lower"),
    ("piped_rps", "pipelined `h2load --h1 -c64 -m16` req/s", "higher"),
    ("piped_cpu", "server CPU per request, pipelined (µs)", "lower"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pounce", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "pounce"))
    ap.add_argument("--md", help="replace the metrics-cost section of this markdown file (e.g. bench/RESULTS.md)")
    args = ap.parse_args()
    args.pounce = os.path.abspath(args.pounce)
    for tool in ("wrk", "h2load"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            sys.exit(f"{tool} is not installed (apt-get install wrk nghttp2-client)")
    ratios = {k: [] for k, _, _ in ROWS}
    for rnd in range(1, args.rounds + 1):
        order = [False, True] if rnd % 2 else [True, False]
        got = {m: one(args.pounce, args, m) for m in order}
        for k, _, _ in ROWS:
            ratios[k].append(got[True][k] / got[False][k])
        print(f"round {rnd}: " + ", ".join(f"{k} on/off {ratios[k][-1]:.3f}" for k, _, _ in ROWS), flush=True)
    meta = u.run_meta()
    out = [MARK_BEGIN, "## Metrics cost, paired rounds (`bench/metrics_cost.py`)", ""]
    out.append(f"Produced on {meta['date']} ({meta['machine']}; pounce {meta['commit']}). {args.rounds} rounds; in "
               f"each, a fresh pounce ({args.workers} workers) with metrics off and one with `--metrics-addr` "
               f"(scraped every second) ran back to back, {args.duration} s per measurement, the order swapping "
               f"every round. The cost is the median over rounds of the on/off ratio of each pair.")
    out.append("")
    out.append("| metric | median on/off | cost | per-round on/off |")
    out.append("|---|--:|--:|---|")
    over = []
    for k, label, better in ROWS:
        med = statistics.median(ratios[k])
        cost = (1 - med) if better == "higher" else (med - 1)
        if cost > BUDGET:
            over.append(label)
        out.append(f"| {label} | {med:.3f}× | {cost * 100:+.1f} % | " + ", ".join(f"{r:.3f}" for r in ratios[k]) + " |")
    out.append("")
    out.append(("Within the 3 % budget on every row." if not over else
                "Over the 3 % budget: " + "; ".join(over) + ".") +
               " The spread of the per-round ratios is the noise of this shared machine.")
    out.append(MARK_END)
    section = "\n".join(out)
    print()
    print(section)
    if args.md:
        u.write_md(args.md, section, MARK_BEGIN, MARK_END)


if __name__ == "__main__":
    main()
