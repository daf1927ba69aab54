#!/usr/bin/env python3
"""Stall finder: times every request on N keep-alive connections and lists the slow ones.

    bench/stalls.py PORT [--connections 256] [--seconds 8] [--slow-ms 50]

Opens N connections to 127.0.0.1:PORT, keeps one `GET /` in flight on each, and records
every request slower than --slow-ms with when it was sent. A stall of the whole server shows
as many connections slow at the same moment (how the glommio executor stall of
bench/NOTES.md §6b was found: every connection of a worker stalled for 0.06-0.9 s at once).
wrk's p99 only says that something was slow; this says when and for whom. Prints a summary
and the first slow requests; exits 0 unless the server could not be reached.
"""
import argparse
import selectors
import socket
import sys
import time

REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--slow-ms", type=float, default=50.0)
    a = ap.parse_args()
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    try:
        for i in range(a.connections):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, [i, 0.0, b""])
    except OSError as e:
        print(f"cannot connect to 127.0.0.1:{a.port}: {e}", file=sys.stderr)
        return 1
    for s in socks:
        key = sel.get_key(s)
        key.data[1] = time.monotonic()
        s.sendall(REQ)
    slow, done, closed = [], 0, 0
    while time.monotonic() - t0 < a.seconds and closed < len(socks):
        for key, _ in sel.select(1.0):
            s, d = key.fileobj, key.data
            try:
                b = s.recv(65536)
            except BlockingIOError:
                continue
            if not b:
                closed += 1
                sel.unregister(s)
                continue
            d[2] += b
            # The demo's `/` answers a fixed body; one per request in flight.
            if b"Hello, World!" in d[2]:
                now = time.monotonic()
                lat = now - d[1]
                done += 1
                if lat * 1000 > a.slow_ms:
                    slow.append((d[1] - t0, lat, d[0]))
                d[2] = b""
                d[1] = now
                s.sendall(REQ)
    for s in socks:
        s.close()
    conns = len({c for _, _, c in slow})
    print(f"requests {done}, slower than {a.slow_ms:g} ms: {len(slow)} on {conns} connection(s); closed early: {closed}")
    for sent, lat, c in sorted(slow)[:20]:
        print(f"  sent at {sent:7.3f} s  took {lat * 1000:7.1f} ms  connection {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
