#!/usr/bin/env python3
"""Writes the seed corpus: valid and hostile inputs for both targets.
Each file is one limits byte followed by the input. Re-run after editing;
the corpus replay test (crates/pounce/tests/fuzz_corpus.rs) runs every file."""
import hashlib, os

HERE = os.path.dirname(os.path.abspath(__file__))

heads = [
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nUser-Agent: curl/8\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    # hostile
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(40)) + b"\r\n",
]
chunks = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n7;name=val\r\n, world\r\n0\r\nTrailer: t\r\n\r\nGET / HTTP/1.1\r\n",
    b"A\r\n0123456789\r\n1 ; x=\"y\"\r\n!\r\n0\r\n\r\n",
    b"0\r\n\r\n",
    # hostile
    b"x\r\n", b"-1\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n",
    b"5\r\nhelloX\r\n0\r\n\r\n", b"11111111111111111\r\n", b"FFFFFFFF\r\n",
    b"5 \r\nhello\r\n", b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n",
    b"0\r\nX: y\n\r\n", b"0\r\n" + b"a" * 20000,
]

def write(kind, items, limit_bytes):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    for item in items:
        for lb in limit_bytes:
            data = bytes([lb]) + item
            name = hashlib.sha1(data).hexdigest()[:16]
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)

write("request_head", heads, [0x00, 0x7f, 0xff])
write("chunked", chunks, [0x00, 0x10, 0xff])
