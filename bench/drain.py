#!/usr/bin/env python3
"""Drain harness: does a SIGTERM under load drop any request?

Starts `pounce demo`, runs N clients that loop keep-alive requests (fast GET /,
slow GET /sleep/<ms>, POST /echo with a body), sends SIGTERM mid-run, and
classifies every request a client attempted:

  completed  a 2xx response arrived
  503        the server refused it explicitly (draining); the client honours
             Retry-After before trying again, as a load balancer would
  refused    connect() failed (nothing was sent): the server is gone
  dropped    the request was sent and no complete response came back
             (reset, EOF or timeout) -- the number that must be 0

A client reconnects after `Connection: close` and stops once connecting is
refused. Each run also records pounce's exit code and SIGTERM->exit time.

Usage: bench/drain.py [--runs 10] [--clients 200] [--load-seconds 2]
                      [--pounce target/release/pounce] [--workers 2] [--json out.json]
Exit status: 0 if no request was dropped and every run exited 0, else 1.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

SLOW_MS = 200
BODY = b"x" * 1024


class Tally:
    def __init__(self):
        self.completed = 0
        self.rejected = 0  # 503
        self.refused = 0
        self.dropped = 0
        self.other = 0  # unexpected non-2xx, non-503 statuses
        self.drop_reasons = {}
        self.after_signal = 0  # requests completed after SIGTERM

    def drop(self, why):
        self.dropped += 1
        self.drop_reasons[why] = self.drop_reasons.get(why, 0) + 1


async def read_response(reader):
    """Returns (status, headers dict, close?) after reading the whole body."""
    line = await reader.readline()
    if not line:
        raise EOFError("eof before status line")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    if not m:
        raise ValueError(f"bad status line {line!r}")
    status = int(m.group(1))
    headers = {}
    while True:
        h = await reader.readline()
        if not h:
            raise EOFError("eof in head")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    close = headers.get("connection", "").lower() == "close"
    return status, headers, close


async def client(idx, host, port, tally, stop_at, signalled, timeout):
    kinds = ["fast", "slow", "post"]
    n = idx
    writer = None
    reader = None
    while time.monotonic() < stop_at:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (ConnectionRefusedError, OSError, asyncio.TimeoutError):
                tally.refused += 1
                return
        kind = kinds[n % 3]
        n += 1
        if kind == "fast":
            req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        elif kind == "slow":
            req = f"GET /sleep/{SLOW_MS} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
        else:
            req = b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
        try:
            writer.write(req)
            await writer.drain()
            status, headers, close = await asyncio.wait_for(read_response(reader), timeout)
        except asyncio.TimeoutError:
            tally.drop("timeout")
            close, status = True, None
        except (ConnectionResetError, BrokenPipeError):
            tally.drop("reset")
            close, status = True, None
        except (EOFError, asyncio.IncompleteReadError):
            tally.drop("eof")
            close, status = True, None
        except (OSError, ValueError) as e:
            tally.drop(type(e).__name__)
            close, status = True, None
        if status is not None:
            if 200 <= status < 300:
                tally.completed += 1
                if signalled.is_set():
                    tally.after_signal += 1
            elif status == 503:
                tally.rejected += 1
            else:
                tally.other += 1
        if close:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
            writer = None
            if status == 503:
                retry = headers.get("retry-after", "1")
                await asyncio.sleep(float(retry) if retry.isdigit() else 1.0)
    if writer is not None:
        writer.close()


async def one_run(args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_") and k not in ("SHUTDOWN_TIMEOUT", "RUST_LOG")}
    proc = subprocess.Popen(
        [args.pounce, "demo", "--port", "0", "--workers", str(args.workers),
         "--shutdown-timeout", str(args.shutdown_timeout), "--max-connections", "100000"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
    )
    log = []
    try:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if not line:
                break
            log.append(line.rstrip())
            m = re.search(r"Listening on http://[^:]+:(\d+)", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise RuntimeError("pounce did not start:\n" + "\n".join(log))
        tally = Tally()
        signalled = asyncio.Event()
        stop_at = time.monotonic() + args.load_seconds + args.shutdown_timeout + 15
        tasks = [asyncio.create_task(client(i, "127.0.0.1", port, tally, stop_at, signalled, args.timeout))
                 for i in range(args.clients)]
        await asyncio.sleep(args.load_seconds)
        t_sig = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        signalled.set()
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, proc.wait)
        exit_s = time.monotonic() - t_sig
        await asyncio.wait_for(asyncio.gather(*tasks), args.timeout + 20)
        rest = proc.stderr.read().decode().splitlines()
        log.extend(rest)
        return tally, code, exit_s, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--load-seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shutdown-timeout", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=15.0, help="per-request client timeout")
    ap.add_argument("--pounce", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "pounce"))
    ap.add_argument("--json", help="write per-run results here")
    args = ap.parse_args()
    if not os.access(args.pounce, os.X_OK):
        sys.exit(f"no pounce binary at {args.pounce} (cargo build --release -p pounce-cli)")
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    rows = []
    ok = True
    print(f"{'run':>3} {'completed':>9} {'after-sig':>9} {'503':>5} {'refused':>7} {'dropped':>7} {'other':>5} {'exit':>4} {'SIGTERM->exit':>13}")
    for r in range(1, args.runs + 1):
        tally, code, exit_s, log = asyncio.run(one_run(args))
        rows.append({"run": r, "completed": tally.completed, "completed_after_signal": tally.after_signal,
                     "rejected_503": tally.rejected, "refused": tally.refused, "dropped": tally.dropped,
                     "drop_reasons": tally.drop_reasons, "other_status": tally.other,
                     "exit_code": code, "sigterm_to_exit_s": round(exit_s, 3)})
        print(f"{r:>3} {tally.completed:>9} {tally.after_signal:>9} {tally.rejected:>5} {tally.refused:>7} "
              f"{tally.dropped:>7} {tally.other:>5} {code:>4} {exit_s:>12.3f}s"
              + (f"  drops: {tally.drop_reasons}" if tally.dropped else ""))
        if tally.dropped or code != 0 or tally.other:
            ok = False
            print("\n".join("    | " + l for l in log[-15:]))
    total = {k: sum(row[k] for row in rows) for k in ("completed", "rejected_503", "refused", "dropped", "other_status")}
    exits = sorted(row["sigterm_to_exit_s"] for row in rows)
    print(f"total: {total}; SIGTERM->exit median {exits[len(exits) // 2]:.3f}s, max {exits[-1]:.3f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clients": args.clients, "workers": args.workers, "runs": rows, "total": total}, f, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
