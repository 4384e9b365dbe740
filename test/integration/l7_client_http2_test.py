"""L7 with HTTP/2 clients through the real binary: TLS termination per route, curl, nghttp,
h2load and grpcio clients, connection-level behaviour (quiet memory, resumption, drain)."""

import signal
import socket
import ssl
import subprocess
import time
import unittest

import grpc

from test.integration import harness
from test.integration.l7_harness import L7TestCase, RecordBatchTls, h2_frame, h2_frames


class L7Http2ClientTest(L7TestCase):
    def test_curl_http2_small_and_one_megabyte_through_a_terminating_route(self):
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "l7" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual(code, 0, err)
        self.assertEqual(meta, "200 2")
        self.assertEqual(body, b"hello from nghttpd\n")
        code, body, meta, err = self.curl(proxy.port(), "/1m.bin", "a.test", "--http2")
        self.assertEqual(meta, "200 2")
        self.assertEqual(harness.sha256(body), harness.sha256(self.big))
        # The client saw the proxy's certificate for a.test (curl verified it against the CA),
        # and ALPN chose h2 over http/1.1.
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["http/1.1", "h2"])
        with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
            self.assertEqual(tls.selected_alpn_protocol(), "h2")
            self.assertEqual(dict(x[0] for x in tls.getpeercert()["subject"])["commonName"], "a.test")

    def test_mixed_l4_and_l7_routes_on_one_listener(self):
        web = self.nghttpd()
        tls_echo = self.echo_backend(self.cert_b)
        proxy = self.start_proxy(f"""
            listeners {{ name: "mixed" address: "127.0.0.1:0"
              {self.l7_route("a.test", web.address, self.cert_a)}
              routes {{ hostname: "b.test" backend: "{tls_echo.address}" mode: L4 }} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual((code, meta), (0, "200 2"), err)
        ctx = self.certs.client_context()
        with harness.tls_connect(proxy.port(), "b.test", ctx) as conn:  # passthrough: b's own cert
            conn.sendall(b"l4 still")
            self.assertEqual(conn.recv(8), b"l4 still")

    def test_nghttp_and_h2load_many_streams_on_one_connection(self):
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "l7" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        port = proxy.port()
        nghttp = subprocess.run(["nghttp", "-n", "-s", "-H", f":authority: a.test:{port}",
                                 f"https://127.0.0.1:{port}/small.html"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(nghttp.returncode, 0, nghttp.stdout + nghttp.stderr)
        h2load = subprocess.run(["h2load", "-n", "2000", "-c", "2", "-m", "100",
                                 f"--connect-to=127.0.0.1:{port}", f"https://a.test:{port}/small.html"],
                                capture_output=True, text=True, timeout=60)
        self.assertIn("2000 succeeded, 0 failed", h2load.stdout, h2load.stdout)
        self.assertIn("2000 2xx", h2load.stdout)
        stats = proxy.stats()
        self.assertGreaterEqual(stats["route.l7.a.test.rq_total"], 2001)
        self.assertLessEqual(stats["listener.l7.downstream_cx_total"], 3)
        self.assertEqual(proxy.terminate(), 0, proxy.log()[-3000:])  # LeakSanitizer exits 23

    def test_grpc_unary_streaming_and_error_status_in_trailers(self):
        backend = self.grpc_backend()
        proxy = self.start_proxy(f"""
            listeners {{ name: "grpc" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        channel = self.grpc_channel(proxy.port())
        unary = channel.unary_unary("/test.Echo/Unary")
        reply, call = unary.with_call(b"hi", timeout=10)
        self.assertIn(b"body=hi", reply)
        self.assertIn(b"proto=https", reply)
        self.assertIn(("x-backend-trailer", "present"), call.trailing_metadata())
        with self.assertRaises(grpc.RpcError) as failure:
            channel.unary_unary("/test.Echo/Fail")(b"x", timeout=10)
        self.assertEqual(failure.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(failure.exception.details(), "not for you")
        chat = channel.stream_stream("/test.Echo/Chat")
        replies = list(chat(iter([b"one", b"two", b"three"]), timeout=10))
        self.assertEqual(replies, [b"echo:one", b"echo:two", b"echo:three"])
        channel.close()
        self.assertEqual(proxy.terminate(), 0, proxy.log()[-3000:])  # LeakSanitizer exits 23

    def test_a_quiet_http2_connection_releases_its_frame_buffer_and_serves_after(self):
        """Half a second without traffic, an HTTP/2 connection gives nghttp2's frame-buffer page
        back (4 KiB of an idle connection's 26); the next request on it still works, and the
        connection is released again when it goes quiet again."""
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "quiet" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""",
                                 workers=1, extra_args=("--log-level", "debug"))
        context = ssl.create_default_context(cafile=self.certs.ca_cert)
        context.set_alpn_protocols(["h2"])
        client = RecordBatchTls(socket.create_connection(("127.0.0.1", proxy.port())), context,
                                server_hostname="a.test")
        self.addCleanup(client.sock.close)
        client.send_records([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) + h2_frame(4, 1, 0)])

        def released(times):
            harness.wait_until(lambda: proxy.log().count("idle buffers released") >= times,
                               timeout=5, what=f"release number {times}")

        released(1)
        # GET /small.html on stream 1: :method GET, :scheme https (static table), :path and
        # :authority as literals with indexed names.
        block = (bytes([0x82, 0x87, 0x04, len(b"/small.html")]) + b"/small.html" +
                 bytes([0x01, len(b"a.test")]) + b"a.test")
        client.send_records([h2_frame(1, 0x5, 1, block)])
        body = b""

        def response_done(data):
            nonlocal body
            data_frames = [(flags, payload) for kind, flags, stream, payload in h2_frames(data)
                           if kind == 0 and stream == 1]
            body = b"".join(payload for _, payload in data_frames)
            return any(flags & 1 for flags, _ in data_frames)  # END_STREAM

        client.read_until(response_done)
        self.assertEqual(body, b"hello from nghttpd\n")
        released(2)  # quiet again after the exchange

    def test_tls_sessions_are_resumed(self):
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "res" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        ctx = self.certs.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # session ids without ticket timing games
        with harness.tls_connect(proxy.port(), "a.test", ctx) as first:
            first.sendall(b"GET /small.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            harness.recv_all(first)
            session = first.session
        raw = socket.create_connection(("127.0.0.1", proxy.port()), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as second:
            self.assertTrue(second.session_reused)

    def test_drain_lets_an_open_stream_finish_and_sends_goaway(self):
        backend = self.grpc_backend()
        proxy = self.start_proxy(f"""
            drain_timeout_ms: 10000
            listeners {{ name: "dr" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        channel = self.grpc_channel(proxy.port())
        outgoing, replies = self.open_chat(channel)
        outgoing.put(b"before")
        self.assertEqual(next(replies), b"echo:before")
        proxy.proc.send_signal(signal.SIGTERM)
        harness.wait_until(lambda: "draining" in proxy.log(), what="drain")
        time.sleep(0.3)
        outgoing.put(b"during")  # the open stream keeps working after GOAWAY
        self.assertEqual(next(replies), b"echo:during")
        self.assertIsNone(proxy.proc.poll())
        outgoing.put(None)
        self.assertEqual(list(replies), [])
        self.assertEqual(proxy.proc.wait(15), 0)  # closed when the stream ended, long before 10 s
        self.assertIn("stat listener.dr.close.finished 1", proxy.log())


if __name__ == "__main__":
    unittest.main()
