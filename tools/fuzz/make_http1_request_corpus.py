#!/usr/bin/env python3
"""Writes test/fuzz/corpus/http1_request/: seed inputs for test/fuzz/http1_request_fuzz.cc.

Each file is one control byte (bits 0-1: how the in-process upstream answers; bits 2-7: the
client's bytes arrive in reads of 1 to 64 bytes) followed by what a client sends. Every request
runs under each upstream behaviour, once byte by byte and once in 64-byte reads. Re-run after
adding a case; crashes libFuzzer finds are added next to these (crash-*) and kept."""

import os
import sys

REQUESTS = {
    "get": b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "get_pipelined": b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "get_close": b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n",
    "http10": b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n",
    "head": b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "post_length": b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
    "post_chunked_trailers": (b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                              b"\r\n5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n"),
    "post_large_body": b"POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: 600\r\n\r\n" + b"b" * 600,
    "expect_continue": (b"PUT /e HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                        b"Content-Length: 3\r\n\r\nabc"),
    "forwarding_headers": (b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 10.0.0.1\r\n"
                           b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: http\r\nTE: trailers\r\n"
                           b"Keep-Alive: 5\r\nProxy-Connection: x\r\n\r\n"),
    "absolute_uri": b"GET http://a.test/p?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Long: one\r\n two\r\n\r\n",
    "smuggle_cl_te": (b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n"),
    "smuggle_two_cl": b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "te_gzip": b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "no_host": b"GET / HTTP/1.1\r\n\r\n",
    "connect": b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
    "upgrade": b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "oversized_header": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"x" * 3000 + b"\r\n\r\n",
    "unknown_expect": b"GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 200-ok\r\n\r\n",
    "header_injection_attempt": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: 1\rX-B: 2\r\n\r\n",
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "test", "fuzz", "corpus", "http1_request")
    os.makedirs(out, exist_ok=True)
    behaviours = ["length", "chunked", "fail_at_once", "fail_later"]
    for name, request in REQUESTS.items():
        for b, behaviour in enumerate(behaviours):
            for reads, size in (("bytewise", 1), ("reads64", 64)):
                control = bytes([((size - 1) << 2) | b])
                with open(os.path.join(out, f"{name}_{behaviour}_{reads}"), "wb") as f:
                    f.write(control + request)


if __name__ == "__main__":
    main()
