"""HTTP/1.1 message framing of an L7 listener at byte level (RFC 9112): what is refused with 400
and a closed connection (nothing of it reaches the backend), and what is served.

A case listed in waivers.txt (suite "http1") may fail; a waived case that passes fails the test."""

import ssl
import time
import unittest

from test.conformance import waivers
from test.integration import harness
from test.integration import l7_harness

HOST = b"Host: a.test\r\n"

# Requests that RFC 9112 (or RFC 9110) says a server must reject, or that a proxy must not
# forward because two parsers could read them two ways (request smuggling).
REFUSED = {
    "6.1/Content-Length and Transfer-Encoding together":
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
    "6.3/two different Content-Lengths":
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "6.3/a Content-Length list":
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1, 2\r\n\r\nab",
    "8.6/a Content-Length with a sign":
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +1\r\n\r\na",
    "8.6/a Content-Length that is not a number":
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1a\r\n\r\na",
    "6.1/a transfer coding other than chunked":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
    "6.1/chunked not the final coding":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "6.1/an unknown coding that contains chunked":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "7.1/a chunk size that is not hex":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
        b"0\r\n\r\n",
    "7.1/a chunk size that overflows":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"10000000000000001\r\nx\r\n0\r\n\r\n",
    "5.1/whitespace between a field name and the colon":
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Space : a\r\n\r\n",
    "5.1/a field name with a space":
        b"GET / HTTP/1.1\r\n" + HOST + b"X Space: a\r\n\r\n",
    "5.5/a NUL in a field value":
        b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n",
    "5.5/a control byte leading a field value":
        b"GET / HTTP/1.1\r\n" + HOST + b"X-A: \x01b\r\n\r\n",
    "3.2/no Host":
        b"GET / HTTP/1.1\r\n\r\n",
    "3.2/two Hosts":
        b"GET / HTTP/1.1\r\n" + HOST + b"Host: b.test\r\n\r\n",
    "3.2/an invalid Host":
        b"GET / HTTP/1.1\r\nHost: a.test evil\r\n\r\n",
    "3/a request line with two spaces":
        b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n",
    "3/a method with a control byte":
        b"G\x01T / HTTP/1.1\r\n" + HOST + b"\r\n",
    "2.2/a bare CR in the request line":
        b"GET /\r HTTP/1.1\r\n" + HOST + b"\r\n",
}

# Requests a server must accept.
SERVED = {
    "7.1.1/chunk extensions":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n0\r\n\r\n",
    "7.1.2/a trailer section":
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
    "5.1/optional whitespace around a field value":
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Padded: \t value \t\r\n\r\n",
    "2.2/a bare LF ending lines":
        b"GET / HTTP/1.1\n" + HOST.replace(b"\r\n", b"\n") + b"\n",
    "3.2.2/absolute-form with the same host":
        b"GET https://a.test/ HTTP/1.1\r\n" + HOST + b"\r\n",
    "9.3/HTTP/1.0 without Host":
        b"GET / HTTP/1.0\r\n\r\n",
}


# Requests the RFC lets a server either refuse with 400 or serve in a stated way: the check
# says whether a 200's body (the backend's view of the request) shows the stated way.
EITHER = {
    # RFC 9112 §5.2: reject, or replace each obs-fold with SP before forwarding.
    "5.2/obs-fold in a field": (
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Folded: a\r\n b\r\n\r\n",
        lambda body: b"x-folded: a b\n" in body),
    # RFC 9110 §8.6: reject, or replace the duplicates with one valid Content-Length.
    "6.3/two equal Content-Lengths": (
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        lambda body: b"size=5 " in body),
}


class Http1FramingConformanceTest(l7_harness.L7TestCase):
    def exchange(self, port, request, timeout=3.0):
        """What the proxy sent back until it closed the connection or `timeout` passed."""
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        data = b""
        with harness.tls_connect(port, "a.test", ctx) as tls:
            tls.sendall(request)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                tls.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    chunk = tls.recv(65536)
                except (ssl.SSLError, ConnectionError, TimeoutError):
                    break
                if not chunk:
                    break
                data += chunk
        return data

    def test_framing_rules_of_rfc9112(self):
        waived = waivers.load("http1")
        backend = self.http1_backend()
        proxy = self.start_proxy(f"""
            listeners {{ address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""")
        port = proxy.port()
        failures = {}
        for name, request in REFUSED.items():
            before = len(backend.requests)
            response = self.exchange(port, request)
            if not response.startswith(b"HTTP/1.1 400 ") or b"connection: close" not in response:
                failures[name] = f"expected 400 and close, got {response[:60]!r}"
            elif len(backend.requests) != before:
                failures[name] = "answered 400, but the request reached the backend"
        for name, request in SERVED.items():
            response = self.exchange(port, request.replace(b"\r\n\r\n", b"\r\nConnection: close"
                                                           b"\r\n\r\n", 1)
                                     if b"\r\n\r\n" in request else request)
            if not response.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
                failures[name] = f"expected 200, got {response[:60]!r}"
        for name, (request, forwarded_right) in EITHER.items():
            before = len(backend.requests)
            response = self.exchange(port, request)
            if response.startswith(b"HTTP/1.1 400 "):
                if len(backend.requests) != before:
                    failures[name] = "answered 400, but the request reached the backend"
            elif not response.startswith(b"HTTP/1.1 200 ") or not forwarded_right(response):
                failures[name] = f"neither 400 nor forwarded as the RFC allows: {response!r}"
        unexpected = {n: p for n, p in failures.items() if n not in waived}
        cases = set(REFUSED) | set(SERVED) | set(EITHER)
        stale = sorted(n for n in waived if n in cases and n not in failures)
        report = "".join(f"\n  {n}: {p}" for n, p in sorted(unexpected.items()))
        self.assertEqual({}, unexpected, f"{len(unexpected)} of {len(cases)} cases failed:{report}")
        self.assertEqual([], stale, "waived cases now pass; remove their waivers")


if __name__ == "__main__":
    unittest.main()
