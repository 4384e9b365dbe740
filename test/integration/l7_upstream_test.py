"""L7 backends through the real binary: h2c, h2 over TLS, HTTP/1.1 (cleartext and TLS), raw
backends that send what real ones rarely do, PROXY protocol to backends, and the upstream
connection pool's failure handling."""

import os
import socket
import ssl
import subprocess
import threading
import time
import unittest

from test.integration import harness
from test.integration.l7_harness import (Http1Backend, L7TestCase, ProxyHeaderRelay, RecordBatchTls,
                                         h2_frame, h2_frames, h2_request_headers)


class L7UpstreamTest(L7TestCase):
    def test_h2_over_tls_backend_verified_against_a_ca_bundle(self):
        good = self.nghttpd(self.cert_a)  # its certificate names a.test, signed by the test CA
        wrong_name = self.nghttpd(self.cert_b)
        tls_route = ('routes {{ hostname: "{host}" backend: "{backend}" mode: L7 '
                     'tls_cert: "{cert}" tls_key: "{key}" backend_tls: true {ca} }}')
        proxy = self.start_proxy(f"""
            listeners {{ name: "tls" address: "127.0.0.1:0"
              {tls_route.format(host="a.test", backend=good.address, cert=self.cert_a[0],
                                key=self.cert_a[1], ca=f'backend_tls_ca: "{self.certs.ca_cert}"')}
              {tls_route.format(host="x.b.test", backend=good.address, cert=self.cert_b[0],
                                key=self.cert_b[1], ca=f'backend_tls_ca: "{self.certs.ca_cert}"')}
              {tls_route.format(host="y.b.test", backend=wrong_name.address, cert=self.cert_b[0],
                                key=self.cert_b[1], ca="")} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual((code, meta), (0, "200 2"), err)
        self.assertEqual(body, b"hello from nghttpd\n")
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http1.1")
        self.assertEqual(meta, "200 1.1", err)
        # x.b.test goes to the backend whose certificate names only a.test: refused, 502.
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "x.b.test", "--http2")
        self.assertEqual(meta, "502 2", err)
        self.assertIn(b"hostname mismatch", body)
        # y.b.test: the name matches (*.b.test), but the system CA bundle does not trust the
        # test CA: refused, 502.
        code, body, meta, err = self.curl(proxy.port(), "/small.html", "y.b.test", "--http2")
        self.assertEqual(meta, "502 2", err)

    def test_http1_backend_keep_alive_bodies_both_ways(self):
        backend = Http1Backend({"small.html": b"hello from http/1.1\n", "1m.bin": self.big})
        self.addCleanup(backend.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "h1b" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""", workers=1)
        port = proxy.port()
        for _ in range(3):
            code, body, meta, err = self.curl(port, "/file/small.html", "a.test", "--http2")
            self.assertEqual((meta, body), ("200 2", b"hello from http/1.1\n"), err)
        self.assertEqual(backend.connections, 1)  # kept alive and reused
        code, body, meta, err = self.curl(port, "/file/1m.bin", "a.test", "--http2")
        self.assertEqual(harness.sha256(body), harness.sha256(self.big))
        code, body, meta, err = self.curl(port, "/chunked", "a.test", "--http1.1")
        self.assertEqual((meta, body), ("200 1.1", b"c" * 25000), err)
        upload = os.path.join(self.workdir, "upload-5m.bin")
        data = os.urandom(5 * 1024 * 1024)
        with open(upload, "wb") as f:
            f.write(data)
        for protocol, extra in (("--http2", []), ("--http1.1", ["-H", "transfer-encoding: chunked"])):
            code, body, meta, err = self.curl(port, "/upload", "a.test", protocol, "-X", "POST",
                                              "-T", upload, *extra)
            self.assertEqual(code, 0, err)
            self.assertEqual(body.decode(),
                             f"size={len(data)} sha={harness.sha256(data)} xff=127.0.0.1")

    def test_upstream_flow_control_window_is_never_leaked(self):
        """Responses that end upstream before the client took them must still give their
        bytes back to the pooled connection's window: 600 x 64 KiB is more than twice the
        16 MiB connection window, so a leak would wedge the connection part-way."""
        with open(os.path.join(self.www, "64k.bin"), "wb") as f:
            f.write(os.urandom(64 * 1024))
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "win" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""",
                                 workers=1)
        port = proxy.port()
        h2load = subprocess.run(["h2load", "-n", "600", "-c", "2", "-m", "10",
                                 f"--connect-to=127.0.0.1:{port}", f"https://a.test:{port}/64k.bin"],
                                capture_output=True, text=True, timeout=60)
        self.assertIn("600 succeeded, 0 failed", h2load.stdout, h2load.stdout[-500:])
        code, body, meta, err = self.curl(port, "/small.html", "a.test", "--http2")
        self.assertEqual(meta, "200 2", err)  # and the pooled connection still serves

    def test_upstream_records_read_ahead_beyond_one_read_round_are_not_stranded(self):
        """The same from an h2-over-TLS backend: a response in 40 TLS records, one TCP write."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self.cert_a)
        context.set_alpn_protocols(["h2"])
        pieces = [b"%02d" % i * 50 for i in range(38)]

        def serve(conn):
            backend = RecordBatchTls(conn, context, server_side=True)
            headers = h2_request_headers(backend.read_until(h2_request_headers))
            if headers is None:
                return
            stream = headers[0]
            data = [h2_frame(0, 0, stream, piece) for piece in pieces[:-1]]
            backend.send_records([h2_frame(4, 0, 0), h2_frame(4, 1, 0),
                                  h2_frame(1, 4, stream, bytes([0x88]))]  # :status 200
                                 + data + [h2_frame(0, 1, stream, pieces[-1])])
            backend.read_until(lambda data: False, timeout=10)  # until the proxy closes

        backend = self.raw_backend(serve)
        proxy = self.start_proxy(f"""
            listeners {{ name: "ura" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend, self.cert_a,
                             f'backend_tls: true backend_tls_ca: "{self.certs.ca_cert}"')} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http2", "--max-time", "5")
        self.assertEqual((meta, body), ("200 2", b"".join(pieces)), err)

    def test_http1_request_without_a_body_goes_upstream_without_one(self):
        """A bodyless HTTP/1.1 request (GET) reaches an HTTP/1.1 backend with no chunked empty
        body after it (a backend that ignores GET bodies reads "0" as its next request, and the
        connection cannot be reused), and an h2c backend as HEADERS that end the stream."""
        requests = []

        def serve_http1(conn):
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                conn.settimeout(0.3)  # and whatever follows the head soon after
                try:
                    data += conn.recv(65536)
                except socket.timeout:
                    pass
                conn.settimeout(None)
                requests.append(data)
                data = b""
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nh1\n")

        header_flags = []

        def serve_h2(conn):
            data = b""
            while h2_request_headers(data) is None:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            stream, flags = h2_request_headers(data)
            header_flags.append(flags)
            conn.sendall(h2_frame(4, 0, 0) + h2_frame(4, 1, 0) +
                         h2_frame(1, 5, stream, bytes([0x88])))  # :status 200, END_STREAM
            conn.recv(65536)

        http1 = self.raw_backend(serve_http1)
        h2 = self.raw_backend(serve_h2)
        proxy = self.start_proxy(f"""
            listeners {{ name: "nb" address: "127.0.0.1:0" {self.l7_route("b.test", h2, self.cert_b)}
              {self.l7_route("a.test", http1, self.cert_a, "backend_protocol: HTTP1")} }}""", workers=1)
        port = proxy.port()
        for _ in range(2):
            code, body, meta, err = self.curl(port, "/", "a.test", "--http1.1")
            self.assertEqual((meta, body), ("200 1.1", b"h1\n"), err)
        self.assertEqual(len(requests), 2)  # one connection carried both
        for request in requests:
            self.assertTrue(request.endswith(b"\r\n\r\n") and request.count(b"\r\n\r\n") == 1,
                            request)
            self.assertNotIn(b"transfer-encoding", request.lower(), request)
        code, body, meta, err = self.curl(port, "/", "b.test", "--http1.1")
        self.assertEqual(meta, "200 1.1", err)
        self.assertEqual(header_flags, [0x5])  # END_HEADERS | END_STREAM

    def test_h2_backend_informational_response_before_the_final_one(self):
        def serve(conn):
            data = b""
            while h2_request_headers(data) is None:  # preface, then frames until the HEADERS
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            stream, _ = h2_request_headers(data)
            early = bytes([0x08, 3]) + b"103"  # :status 103 (literal, indexed name)
            final = bytes([0x88, 0x00, 7]) + b"x-final" + bytes([3]) + b"yes"  # :status 200
            conn.sendall(h2_frame(4, 0, 0) + h2_frame(4, 1, 0) + h2_frame(1, 4, stream, early) +
                         h2_frame(1, 4, stream, final) + h2_frame(0, 1, stream, b"final body"))
            time.sleep(0.5)

        backend = self.raw_backend(serve)
        proxy = self.start_proxy(f"""
            listeners {{ name: "hints" address: "127.0.0.1:0" {self.l7_route("a.test", backend, self.cert_a)} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http2", "-D",
                                          os.path.join(self.workdir, "hints-headers.txt"))
        self.assertEqual((meta, body), ("200 2", b"final body"), err)
        with open(os.path.join(self.workdir, "hints-headers.txt")) as f:
            self.assertIn("x-final: yes", f.read())

    def test_http1_backend_header_names_split_across_reads(self):
        def serve(conn):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Split-Name: yes\r\n\r\nhello":
                conn.sendall(bytes([byte]))  # one byte at a time: every name arrives in pieces
                time.sleep(0.002)
            time.sleep(0.3)

        backend = self.raw_backend(serve)
        proxy = self.start_proxy(f"""
            listeners {{ name: "split" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend, self.cert_a, "backend_protocol: HTTP1")} }}""")
        headers_file = os.path.join(self.workdir, "split-headers.txt")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http2", "-D", headers_file)
        self.assertEqual((meta, body), ("200 2", b"hello"), err)
        with open(headers_file) as f:
            headers = f.read()
        self.assertIn("content-length: 5", headers)
        self.assertIn("x-split-name: yes", headers)

    def test_502_when_the_backend_refuses_and_504_when_it_times_out(self):
        closed = harness.free_port()  # nothing listens there
        silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
        self.addCleanup(silent.close)
        accepted = []
        threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
        self.addCleanup(lambda: [conn.close() for conn, _ in accepted])
        proxy = self.start_proxy(f"""
            listeners {{ name: "err" address: "127.0.0.1:0"
              {self.l7_route("a.test", f"127.0.0.1:{closed}", self.cert_a)}
              {self.l7_route("b.test", f"127.0.0.1:{silent.getsockname()[1]}", self.cert_b)}
              {harness.hcm_chain("response_timeout_ms: 500")} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http2")
        self.assertEqual(meta, "502 2", err)
        self.assertIn(b"Connection refused", body)
        started = time.monotonic()
        code, body, meta, err = self.curl(proxy.port(), "/", "b.test", "--http2")
        self.assertEqual(meta, "504 2", err)
        self.assertGreaterEqual(time.monotonic() - started, 0.45)
        stats = proxy.stats()
        self.assertEqual(stats["route.err.a.test.rq_502"], 1)
        self.assertEqual(stats["route.err.b.test.rq_504"], 1)

    def test_a_slow_upload_is_not_a_response_timeout(self):
        """The backend's time to answer starts when the request has fully arrived: an upload
        that takes three times response_timeout_ms still gets the backend's 200."""
        backend = Http1Backend({})
        self.addCleanup(backend.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "slowup" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")}
              {harness.hcm_chain("response_timeout_ms: 700")} }}""")
        upload = os.path.join(self.workdir, "slow-upload.bin")
        with open(upload, "wb") as f:
            f.write(b"u" * 200_000)
        for version in ("--http2", "--http1.1"):
            started = time.monotonic()
            code, body, meta, err = self.curl(proxy.port(), "/up", "a.test", version,
                                              "--limit-rate", "100K", "--data-binary", "@" + upload)
            self.assertGreater(time.monotonic() - started, 1.4)
            self.assertEqual(meta.split()[0], "200", f"{version}: {body!r} {err}")
            self.assertTrue(body.startswith(b"size=200000 "), body)

    def test_dead_pooled_backend_connection_gives_502_and_the_proxy_stays_up(self):
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "rst" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        code, _, meta, _ = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual(meta, "200 2")
        backend.close()  # the pooled upstream connection dies under the proxy
        code, _, meta, _ = self.curl(proxy.port(), "/small.html", "a.test", "--http2")
        self.assertEqual(meta, "502 2")
        self.assertIsNone(proxy.proc.poll())

    def test_proxy_protocol_to_an_l7_backend_names_each_client(self):
        web = self.nghttpd()
        relay = ProxyHeaderRelay(web.port)
        self.addCleanup(relay.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "pp7" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{relay.address}" mode: L7
                        tls_cert: "{self.cert_a[0]}" tls_key: "{self.cert_a[1]}"
                        send_proxy_protocol: true }} }}""")
        for source in ("127.0.0.21", "127.0.0.22"):
            code, body, meta, err = self.curl(proxy.port(), "/small.html", "a.test", "--http2",
                                              source=source)
            self.assertEqual((code, meta), (0, "200 2"), err)
        clients = sorted(h["client"].split(":")[0] for h in relay.headers)
        self.assertEqual(clients, ["127.0.0.21", "127.0.0.22"])  # one upstream connection each
        self.assertEqual({h.get("authority") for h in relay.headers}, {"a.test"})

    def test_tls_to_an_http1_backend_verified_by_name(self):
        backend = self.http1_backend({"small.html": b"hello over TLS\n"}, cert_key=self.cert_a)
        route = ('routes {{ hostname: "{host}" backend: "{backend}" mode: L7 tls_cert: "{cert}" '
                 'tls_key: "{key}" backend_tls: true backend_protocol: HTTP1 '
                 'backend_tls_ca: "{ca}" }}')
        proxy = self.start_proxy(f"""
            listeners {{ name: "tls1" address: "127.0.0.1:0"
              {route.format(host="a.test", backend=backend.address, cert=self.cert_a[0],
                            key=self.cert_a[1], ca=self.certs.ca_cert)}
              {route.format(host="x.b.test", backend=backend.address, cert=self.cert_b[0],
                            key=self.cert_b[1], ca=self.certs.ca_cert)} }}""", workers=1)
        for version in ("--http2", "--http1.1"):
            code, body, meta, err = self.curl(proxy.port(), "/file/small.html", "a.test", version)
            self.assertEqual((meta.split()[0], body), ("200", b"hello over TLS\n"), err)
        self.assertEqual(backend.connections, 1)  # one TLS connection, kept alive and reused
        # The backend's certificate names a.test, not x.b.test: refused before any request.
        code, body, meta, err = self.curl(proxy.port(), "/file/small.html", "x.b.test", "--http2")
        self.assertEqual(meta, "502 2", err)
        self.assertIn(b"hostname mismatch", body)
        self.assertEqual(len(backend.requests), 2)

    def test_an_upstream_that_speaks_for_one_client_ends_with_that_client(self):
        """With send_proxy_protocol each upstream connection names one client, so it cannot
        serve another: it must close when its client leaves. Before, 300 sequential clients
        left 300 backend connections open, and under a 256-descriptor limit the proxy answered
        502 from client 236 on."""
        backend = self.http1_backend({"small.html": b"hi\n"})
        relay = ProxyHeaderRelay(int(backend.address.rsplit(":", 1)[1]))
        self.addCleanup(relay.close)
        proxy = self.start_proxy(f"""
            listeners {{ name: "pp1" address: "127.0.0.1:0"
              {self.l7_route("a.test", relay.address, self.cert_a,
                             "backend_protocol: HTTP1 send_proxy_protocol: true")} }}""",
                                 workers=1, command_prefix=("prlimit", "--nofile=64:64"))
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        for i in range(120):
            with harness.tls_connect(proxy.port(), "a.test", ctx) as tls:
                tls.sendall(b"GET /file/small.html HTTP/1.1\r\nHost: a.test\r\n"
                            b"Connection: close\r\n\r\n")
                response = harness.recv_all(tls)
            self.assertTrue(response.startswith(b"HTTP/1.1 200 "), f"client {i}: {response[:60]!r}")
            self.assertTrue(response.endswith(b"hi\n"), f"client {i}")
        harness.wait_until(lambda: relay.active == 0, what="every client's upstream to close")
        self.assertEqual(len(relay.headers), 120)

    def test_an_http2_upstream_that_stops_answering_is_replaced(self):
        """A pooled HTTP/2 connection whose backend stops answering (a hung process, a
        half-dead middlebox) must not take every later request down with it: after a
        response timeout it must answer a PING or go, and new requests go elsewhere."""
        connections = []
        closed = []  # indexes of the connections the proxy closed

        def serve(conn):
            index = len(connections)
            connections.append(conn)
            conn.sendall(h2_frame(4, 0, 0))  # SETTINGS
            data = b""
            answered = 0
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed.append(index)
                    return
                data += chunk
                for kind, flags, stream, _ in h2_frames(data):
                    if kind == 4 and not flags & 1:
                        conn.sendall(h2_frame(4, 1, 0))  # SETTINGS ACK
                    if kind == 1 and stream > answered:
                        answered = stream
                        # The first connection answers its first request, then nothing at all
                        # (no response, no PING ACK); later connections answer everything.
                        if index > 0 or stream == 1:
                            conn.sendall(h2_frame(1, 5, stream, bytes([0x88])))  # 200, END
                data = b""

        backend = self.threaded_raw_backend(serve)
        proxy = self.start_proxy(f"""
            listeners {{ name: "hung" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend, self.cert_a)}
              {harness.hcm_chain("response_timeout_ms: 500 upstream_ping_timeout_ms: 300")} }}""",
                                 workers=1)
        port = proxy.port()
        self.assertEqual(self.curl(port, "/", "a.test", "--http2")[2], "200 2")
        self.assertEqual(self.curl(port, "/", "a.test", "--http2")[2], "504 2")
        # Not again on the same connection: at once, from a new one.
        started = time.monotonic()
        self.assertEqual(self.curl(port, "/", "a.test", "--http2")[2], "200 2")
        self.assertLess(time.monotonic() - started, 0.45)
        self.assertEqual(len(connections), 2)
        # And the silent connection is closed once its PING went unanswered.
        harness.wait_until(lambda: 0 in closed, timeout=5,
                           what="the silent connection to be closed")
        self.assertNotIn(1, closed)

    def test_idle_pooled_connections_are_closed(self):
        backend = self.http1_backend({"small.html": b"hi\n"})
        proxy = self.start_proxy(f"""
            listeners {{ name: "idle" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")}
              {harness.hcm_chain("upstream_idle_timeout_ms: 300")} }}""", workers=1)
        self.assertEqual(self.curl(proxy.port(), "/file/small.html", "a.test", "--http2")[2],
                         "200 2")
        self.assertEqual(backend.connections, 1)
        harness.wait_until(lambda: backend.open == 0, timeout=5,
                           what="the idle upstream connection to close")


if __name__ == "__main__":
    unittest.main()
