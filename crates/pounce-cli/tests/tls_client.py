#!/usr/bin/env python3
"""A TLS client for pounce's tests, on Python's own ssl module (OpenSSL):
one GET on a fresh connection, then read until the server closes. Prints one
JSON line: the negotiated version, ALPN and cipher, the status and body, and
whether the server ended with close_notify; or, if the handshake failed, the
error and OpenSSL's reason for it.

    tls_client.py --port P --ca ca.pem [--version 1.1|1.2|1.3] [--alpn h2 ...] [--path /]
"""

import argparse
import json
import socket
import ssl

VERSIONS = {
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--version", choices=sorted(VERSIONS))
    p.add_argument("--alpn", action="append", default=[])
    p.add_argument("--path", default="/")
    a = p.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.version:
        if a.version == "1.1":
            # OpenSSL 3 allows TLS 1.1 only at security level 0.
            ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        ctx.minimum_version = VERSIONS[a.version]
        ctx.maximum_version = VERSIONS[a.version]
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn)

    out = {"ok": False}
    try:
        with socket.create_connection((a.host, a.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                out["version"] = s.version()
                out["alpn"] = s.selected_alpn_protocol()
                out["cipher"] = s.cipher()[0]
                req = f"GET {a.path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                s.sendall(req.encode())
                data = b""
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:  # close_notify
                            out["close_notify"] = True
                            break
                        data += chunk
                except ssl.SSLEOFError:  # a FIN without close_notify
                    out["close_notify"] = False
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                out["status"] = int(lines[0].split()[1])
                out["headers"] = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
                out["body"] = body.decode("latin-1")
                out["ok"] = True
    except ssl.SSLError as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out["reason"] = e.reason or ""
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out["reason"] = ""
    print(json.dumps(out))


if __name__ == "__main__":
    main()
