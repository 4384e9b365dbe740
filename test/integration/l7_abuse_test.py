"""HTTP/2 abuse against an L7 listener: rapid reset, CONTINUATION floods, too many streams, a
broken stream among good ones, oversized headers. Each costs the offender its stream or its
connection, and nobody else anything."""

import socket
import ssl
import unittest

import grpc

from test.integration import harness
from test.integration.l7_harness import L7TestCase, h2_frame


class L7AbuseTest(L7TestCase):
    def test_rapid_reset_flood_ends_that_connection_only(self):
        """CVE-2023-44487: HEADERS immediately followed by RST_STREAM, thousands of times."""
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "rr" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["h2"])
        # :method GET, :scheme https, :path / (static table), :authority a.test (literal).
        block = bytes([0x82, 0x87, 0x84, 0x01, 0x06]) + b"a.test"
        flood = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0))
        for i in range(5000):
            stream_id = 1 + 2 * i
            flood += h2_frame(1, 0x5, stream_id, block)  # HEADERS, END_STREAM|END_HEADERS
            flood += h2_frame(3, 0, stream_id, (8).to_bytes(4, "big"))  # RST_STREAM CANCEL
        with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
            received = harness.read_until_closed(tls, bytes(flood))
        # The proxy said GOAWAY (frame type 7) and hung up; nghttp2's reset rate limiter uses
        # INTERNAL_ERROR (2) as the code.
        goaway = received.find(bytes([0x07, 0x00, 0x00, 0x00, 0x00, 0x00]))
        self.assertGreater(goaway, 0, "no GOAWAY")
        self.assertEqual(int.from_bytes(received[goaway + 10:goaway + 14], "big"), 0x2)
        # Streams reset in the batch they arrived in never start: at most the few whose RST
        # fell into the next TLS record reach the backend, not 5,000.
        requests = proxy.stats().get("route.rr.a.test.rq_total", 0)
        print(f"rapid reset: {requests} of 5000 streams reached the upstream side", flush=True)
        self.assertLess(requests, 100)
        # Everyone else is still served.
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual(meta, "200 2", err)

    def test_continuation_flood_is_cut_off(self):
        """A HEADERS frame without END_HEADERS followed by endless CONTINUATION frames."""
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "cf" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["h2"])
        flood = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0))
        flood += h2_frame(1, 0x1, 1, bytes([0x82, 0x87, 0x84]))  # END_STREAM, no END_HEADERS
        for _ in range(2000):
            flood += h2_frame(9, 0, 1, bytes([0x40, 1]) + b"x" + bytes([1]) + b"y")  # CONTINUATION
        with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
            received = harness.read_until_closed(tls, bytes(flood))
        goaway = received.find(bytes([0x07, 0x00, 0x00, 0x00, 0x00, 0x00]))
        self.assertGreater(goaway, 0, "no GOAWAY")
        self.assertEqual(int.from_bytes(received[goaway + 10:goaway + 14], "big"), 0xb)  # CALM
        self.assertEqual(proxy.stats().get("route.cf.a.test.rq_total", 0), 0)
        proxy.wait_stat("listener.cf.close.http_protocol_error")
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual(meta, "200 2", err)

    def test_streams_above_max_concurrent_streams_are_refused(self):
        backend = self.grpc_backend()
        proxy = self.start_proxy(f"""
            listeners {{ name: "mcs" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a)}
              {harness.hcm_chain("max_concurrent_streams: 5")} }}""")
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["h2"])
        # POST /test.Echo/Chat without END_STREAM: each stream stays open. 20 of them at once.
        block = bytes([0x83, 0x87, 0x04, 15]) + b"/test.Echo/Chat" + bytes([0x01, 6]) + b"a.test"
        frames = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0))
        for i in range(20):
            frames += h2_frame(1, 0x4, 1 + 2 * i, block)  # END_HEADERS only
        refused = set()
        with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
            tls.sendall(bytes(frames))
            tls.settimeout(2)
            data = b""
            try:
                while len(refused) < 15:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    offset = 0
                    while len(data) - offset >= 9:
                        length = int.from_bytes(data[offset:offset + 3], "big")
                        if len(data) - offset < 9 + length:
                            break
                        kind = data[offset + 3]
                        stream = int.from_bytes(data[offset + 5:offset + 9], "big") & 0x7fffffff
                        payload = data[offset + 9:offset + 9 + length]
                        if kind == 3 and int.from_bytes(payload, "big") == 7:  # REFUSED_STREAM
                            refused.add(stream)
                        offset += 9 + length
                    data = data[offset:]
            except (socket.timeout, ssl.SSLError, ConnectionError):
                pass
        self.assertEqual(len(refused), 15, sorted(refused))
        self.assertEqual(min(refused), 11)  # streams 1..9 (the first five) were accepted

    def test_one_broken_stream_leaves_the_others_and_oversized_headers_reset_one_stream(self):
        backend = self.grpc_backend()
        proxy = self.start_proxy(f"""
            listeners {{ name: "iso" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        channel = self.grpc_channel(proxy.port())
        outgoing, cancelled = self.open_chat(channel)
        outgoing.put(b"x")
        self.assertEqual(next(cancelled), b"echo:x")
        cancelled.cancel()  # the client resets this stream (RST_STREAM CANCEL)
        unary = channel.unary_unary("/test.Echo/Unary")
        self.assertIn(b"body=still", unary(b"still", timeout=10))  # same connection, still fine
        # Header list above max_header_list_bytes (64 KiB): that stream is refused, the
        # connection and its other streams are not.
        with self.assertRaises(grpc.RpcError):
            unary(b"big", timeout=10, metadata=(("x-huge", "h" * 70000),))
        self.assertIn(b"body=after", unary(b"after", timeout=10))
        outgoing.put(None)


if __name__ == "__main__":
    unittest.main()
