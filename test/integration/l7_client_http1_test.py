"""L7 with HTTP/1.1 clients (ALPN http/1.1): keep-alive, chunked bodies and trailers, request
smuggling refused with 400, slowloris and idle timeouts, pipelining, TLS records read ahead."""

import os
import ssl
import subprocess
import time
import unittest

from test.integration import harness
from test.integration.l7_harness import Http1Backend, L7TestCase


class L7Http1ClientTest(L7TestCase):
    def proxy_for(self, backend):
        return self.start_proxy(f"""
            listeners {{ name: "h1" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")

    def test_http1_client_to_h2c_backend_with_keep_alive(self):
        proxy = self.proxy_for(self.nghttpd())
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http1.1")
        self.assertEqual((code, meta), (0, "200 1.1"), err)
        self.assertEqual(body, b"hello from nghttpd\n")
        code, body, meta, err = self.curl(proxy.port(), "/1m.bin", "a.test", "--http1.1")
        self.assertEqual(harness.sha256(body), harness.sha256(self.big))
        # Two requests, one connection.
        port = proxy.port()
        result = subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", "-o", "/dev/null", "-o", "/dev/null", "-w",
             "%{num_connects} ", f"https://a.test:{port}/small.html",
             f"https://a.test:{port}/small.html"], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.stdout.split(), ["1", "0"])

    def test_chunked_upload_and_chunked_response_with_trailers(self):
        proxy = self.proxy_for(self.grpc_backend())
        frame = self._grpc_frame(b"from-h1")
        result = subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{proxy.port()}:127.0.0.1", "-X", "POST", "-H", "content-type: application/grpc",
             "-H", "te: trailers", "-H", "transfer-encoding: chunked", "--data-binary", "@" + frame,
             "-D", "-", f"https://a.test:{proxy.port()}/test.Echo/Unary"],
            capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"transfer-encoding: chunked", result.stdout.lower())
        self.assertIn(b"body=from-h1", result.stdout)

    def test_request_smuggling_and_oversized_headers_get_400(self):
        backend = self.nghttpd()
        proxy = self.proxy_for(backend)
        port = proxy.port()
        cases = {
            "cl_and_te": b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "two_lengths": b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n"
                           b"Content-Length: 2\r\n\r\nab",
            "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                              b"\r\nzz\r\nhello\r\n0\r\n\r\n",
            "other_coding": b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            "huge_header": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
            "no_host": b"GET / HTTP/1.1\r\n\r\n",
            # libhttp-parser checks a value's bytes only after its first one, and passes these
            # on; a backend must never see them (found by fuzzing).
            "nul_in_value": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A:\x00b\r\n\r\n",
            "control_in_value": b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: \x01b\r\n\r\n",
            "space_in_host": b"GET / HTTP/1.1\r\nHost: a.test evil\r\n\r\n",
        }
        for name, request in cases.items():
            response = self.send_raw(port, request)
            self.assertTrue(response.startswith(b"HTTP/1.1 400 "), f"{name}: {response[:80]!r}")
            self.assertIn(b"connection: close", response, name)
        # And a well-formed request still works on a new connection.
        response = self.send_raw(port, b"GET /small.html HTTP/1.1\r\nHost: a.test\r\n"
                                       b"Connection: close\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response[:80])
        self.assertTrue(response.endswith(b"hello from nghttpd\n"))

    def test_slowloris_headers_and_idle_connections_are_closed(self):
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "slow" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a)}
              {harness.hcm_chain("request_header_timeout_ms: 600 idle_timeout_ms: 1500")} }}""")
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        # Slowloris: a header byte every 150 ms is activity, but never a complete request.
        with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
            started = time.monotonic()
            try:
                for byte in b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: " + b"s" * 100:
                    tls.sendall(bytes([byte]))
                    time.sleep(0.15)
                    if time.monotonic() - started > 10:
                        break
            except (ssl.SSLError, ConnectionError):
                pass
            self.assertLess(time.monotonic() - started, 5)
        proxy.wait_stat("listener.slow.close.request_header_timeout")
        # Idle: one request on a keep-alive HTTP/2 connection, then silence.
        ctx2 = self.certs.client_context()
        ctx2.set_alpn_protocols(["h2"])
        with harness.tls_connect(proxy.port(), "a.test", ctx2) as tls:
            empty_settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type 4
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + empty_settings)
            started = time.monotonic()
            tls.settimeout(10)
            try:
                while tls.recv(65536):
                    pass
            except (ssl.SSLError, ConnectionError):
                pass
            self.assertGreaterEqual(time.monotonic() - started, 1.2)
            self.assertLess(time.monotonic() - started, 5)
        proxy.wait_stat("listener.slow.close.idle_timeout")

    def test_many_http1_requests_never_reset_finished_upstream_streams(self):
        """Each HTTP/1.1 exchange ends while its upstream HTTP/2 stream is closing; resetting
        such streams made nghttpd (nghttp2's rapid-reset limit) answer GOAWAY after 1,000 of
        them, turning in-flight requests into 502s."""
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "many" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""",
                                 workers=1)
        lua = os.path.join(self.workdir, "resolve.lua")
        with open(lua, "w") as f:
            f.write('wrk.resolve = function(host, service)\n'
                    '  wrk.addrs = wrk.lookup("127.0.0.1", service)\nend\n')
        result = subprocess.run(["wrk", "-t", "1", "-c", "8", "-d", "3s", "-s", lua,
                                 f"https://a.test:{proxy.port()}/small.html"],
                                capture_output=True, text=True, timeout=60)
        self.assertNotIn("Non-2xx", result.stdout, result.stdout)
        stats = proxy.stats()
        self.assertGreater(stats["route.many.a.test.rq_total"], 3000)
        self.assertEqual(stats.get("route.many.a.test.rq_502", 0), 0)

    def test_http1_gets_502(self):
        proxy = self.start_proxy(f"""
            listeners {{ name: "h1" address: "127.0.0.1:0"
              {self.l7_route("a.test", f"127.0.0.1:{harness.free_port()}", self.cert_a)} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http1.1")
        self.assertEqual(meta, "502 1.1", err)

    def test_records_read_ahead_beyond_one_read_round_are_not_stranded(self):
        """40 TLS records in one TCP write: OpenSSL reads them all ahead at once, the proxy
        takes 16 per turn, and the socket is empty after the first. The rest must still be
        read (CI once lost an upload's last 163 bytes this way: curl waited 20 s)."""
        backend = Http1Backend({})
        self.addCleanup(backend.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "ra" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""", workers=1)
        body = os.urandom(39 * 100)
        client = self.record_batch_client(proxy.port())
        head = b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % len(body)
        client.send_records([head] + [body[i:i + 100] for i in range(0, len(body), 100)])
        expected = f"size={len(body)} sha={harness.sha256(body)} xff=127.0.0.1".encode()
        response = client.read_until(lambda received: expected in received)
        self.assertIn(expected, response)

    def test_pipelined_request_read_ahead_while_paused_is_not_stranded(self):
        """A second request pipelined behind the first, in several records of one TCP write:
        reading pauses after its first record until the first response is done, and OpenSSL
        holds the rest. Resuming must read them, though the socket never becomes readable."""
        backend = Http1Backend({"small.html": b"hello from http/1.1\n"})
        self.addCleanup(backend.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "rp" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""", workers=1)
        client = self.record_batch_client(proxy.port())
        request = b"GET /file/small.html HTTP/1.1\r\nHost: a.test\r\n\r\n"
        client.send_records([request, request[:10], request[10:20], request[20:30], request[30:]])
        response = client.read_until(lambda received: received.count(b"hello from http/1.1") == 2)
        self.assertEqual(response.count(b"HTTP/1.1 200 OK"), 2, response)


if __name__ == "__main__":
    unittest.main()
