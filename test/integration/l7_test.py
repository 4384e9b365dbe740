"""L7 through the real binary: TLS termination per route, HTTP/2 to the client, h2c to real
backends (nghttpd, a python3-grpcio server), with curl, nghttp, h2load and grpcio clients."""

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest
from concurrent import futures

import grpc

from test.integration import harness


def identity(x):
    return x


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_frames(data):
    """(type, flags, stream id, payload) of each complete frame in `data` (HTTP/2 bytes, from the
    client preface on if it is there)."""
    offset = 24 if data.startswith(b"PRI * HTTP/2.0") else 0
    while len(data) - offset >= 9:
        length = int.from_bytes(data[offset:offset + 3], "big")
        if len(data) - offset < 9 + length:
            return
        stream = int.from_bytes(data[offset + 5:offset + 9], "big") & 0x7fffffff
        yield data[offset + 3], data[offset + 4], stream, data[offset + 9:offset + 9 + length]
        offset += 9 + length


def h2_request_headers(data):
    """(stream id, flags) of the first HEADERS frame in `data` (a client's bytes from the
    preface on), or None while it has not all arrived."""
    return next(((stream, flags) for kind, flags, stream, _ in h2_frames(data) if kind == 1), None)


class RecordBatchTls:
    """One end of a TLS connection, run through memory BIOs so that many TLS records can go out
    in one TCP write. The proxy's first read then takes them all into OpenSSL's read-ahead
    buffer, where epoll cannot see them: a read loop that stops early must still come back."""

    def __init__(self, sock, context, **wrap_args):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, **wrap_args)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self._receive(5)
        self.sock.sendall(self.outgoing.read())

    def _receive(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the peer closed the connection")
        self.incoming.write(data)

    def send_records(self, records):
        """Each of `records` becomes its own TLS record; all of them leave in one write."""
        for record in records:
            self.tls.write(record)
        self.sock.sendall(self.outgoing.read())

    def read_until(self, done, timeout=5.0):
        """The plaintext received until done(received) holds, the peer closes, or the timeout."""
        received = b""
        deadline = time.monotonic() + timeout
        while not done(received):
            try:
                received += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._receive(left)
            except (socket.timeout, ConnectionError):
                break
        return received


class GrpcBackend:
    """A real gRPC server (h2c). Unary answers with the forwarding headers it was given;
    Fail ends with an error status in trailers; Chat echoes a bidirectional stream."""

    def __init__(self):
        def unary(request, context):
            metadata = dict(context.invocation_metadata())
            context.set_trailing_metadata((("x-backend-trailer", "present"),))
            return ("xff=%s proto=%s real=%s authority=%s body=%s" % (
                metadata.get("x-forwarded-for"), metadata.get("x-forwarded-proto"),
                metadata.get("x-real-ip"), metadata.get(":authority", context.peer()),
                request.decode())).encode()

        def fail(request, context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")

        def chat(requests, context):
            for message in requests:
                yield b"echo:" + message

        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, identity, identity),
            "Fail": grpc.unary_unary_rpc_method_handler(fail, identity, identity),
            "Chat": grpc.stream_stream_rpc_method_handler(chat, identity, identity),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def close(self):
        self.server.stop(0)


class ProxyHeaderRelay:
    """Reads the PROXY header each connection starts with, records it, then relays the rest of
    the bytes to `target` (an h2c server) both ways."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.headers = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            self.headers.append(harness.read_proxy_header(conn))
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except (OSError, ConnectionError):
            conn.close()
            return

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()
        pump(conn, upstream)

    def close(self):
        self.listener.close()


class Http1Backend:
    """An HTTP/1.1 keep-alive backend (Python's http.server) that counts its connections.
    GET /file/NAME serves bytes with a Content-Length, GET /chunked answers chunked, and POST
    answers with the size and sha256 of the body it got (chunked or not) and its X-Forwarded-For."""

    def __init__(self, files):
        import http.server
        backend = self
        self.connections = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                backend.connections += 1

            def log_message(self, *args):
                pass

            def reply(self, body, chunked=False):
                self.send_response(200)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 1000):
                        piece = body[i:i + 1000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self):
                if self.path == "/chunked":
                    self.reply(b"c" * 25000, chunked=True)
                else:
                    self.reply(files[self.path.rsplit("/", 1)[1]])

            def do_POST(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.reply(("size=%d sha=%s xff=%s" % (len(body), harness.sha256(body),
                                                        self.headers.get("X-Forwarded-For"))).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class L7TestCase(harness.ProxyTestCase):
    """Backends, clients and route config shared by the L7 tests."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.big = os.urandom(1024 * 1024)
        cls.www = cls.make_www({"1m.bin": cls.big})

    def grpc_backend(self):
        backend = GrpcBackend()
        self.addCleanup(backend.close)
        return backend

    def l7_route(self, hostname, backend, cert_key, extra=""):
        """A terminating route; `extra` adds fields (backend_protocol: HTTP1, backend_tls, ...)."""
        return (f'routes {{ hostname: "{hostname}" backend: "{backend}" mode: L7 {extra} '
                f'tls_cert: "{cert_key[0]}" tls_key: "{cert_key[1]}" }}')

    def curl(self, port, path, host="a.test", *extra, source=None):
        args = ["curl", "-sS", "--max-time", "20", "--cacert", self.certs.ca_cert, "--resolve",
                f"{host}:{port}:127.0.0.1", "-o", "-", "-w", "\\n%{http_code} %{http_version}",
                *extra]
        if source:
            args += ["--interface", source]
        result = subprocess.run(args + [f"https://{host}:{port}{path}"], capture_output=True,
                                timeout=30)
        body, _, meta = result.stdout.rpartition(b"\n")
        return result.returncode, body, meta.decode(), result.stderr.decode()

    def grpc_channel(self, port, host="a.test"):
        creds = grpc.ssl_channel_credentials(open(self.certs.ca_cert, "rb").read())
        channel = grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                      options=(("grpc.ssl_target_name_override", host),
                                               ("grpc.default_authority", host)))
        self.addCleanup(channel.close)
        return channel

    def _grpc_frame(self, message):
        path = os.path.join(self.workdir, f"frame-{time.monotonic_ns()}")
        with open(path, "wb") as f:
            f.write(b"\x00" + len(message).to_bytes(4, "big") + message)
        return path


class L7Test(L7TestCase):
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

    def test_forwarding_headers_carry_the_client(self):
        backend = self.grpc_backend()
        proxy = self.start_proxy(f"""
            listeners {{ name: "fw" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        channel = self.grpc_channel(proxy.port())
        reply = channel.unary_unary("/test.Echo/Unary")(b"h", timeout=10,
                                                        metadata=(("x-forwarded-for", "203.0.113.1"),))
        # An existing X-Forwarded-For is kept and the client appended; X-Real-IP is the client.
        self.assertIn(b"xff=203.0.113.1, 127.0.0.1 ", reply)
        self.assertIn(b"real=127.0.0.1 ", reply)
        self.assertIn(b"proto=https ", reply)

    def test_edge_to_origin_where_the_backend_sees_the_real_client(self):
        backend = self.grpc_backend()
        origin = self.start_proxy(f"""
            listeners {{ name: "origin" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.1/32"
              {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        edge = self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{origin.port()}" send_proxy_protocol: true }} }}""")
        # grpcio cannot choose its source address, so the client whose address must arrive is
        # curl bound to 127.0.0.9, speaking gRPC framing by hand; grpcio checks the path too.
        channel = self.grpc_channel(edge.port())
        reply = channel.unary_unary("/test.Echo/Unary")(b"e", timeout=10)
        self.assertIn(b"xff=127.0.0.1 ", reply)
        code, body, meta, err = self.curl(
            edge.port(), "/test.Echo/Unary", "a.test", "--http2", "-X", "POST", "-H",
            "content-type: application/grpc", "-H", "te: trailers", "--data-binary",
            "@" + self._grpc_frame(b"from-curl"), source="127.0.0.9")
        self.assertEqual(code, 0, err)
        self.assertIn(b"xff=127.0.0.9 ", body)
        self.assertIn(b"real=127.0.0.9 ", body)

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

    def raw_backend(self, serve):
        """A one-connection-at-a-time TCP backend running serve(conn) per connection."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def loop():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    try:
                        serve(conn)
                    except OSError:
                        pass

        threading.Thread(target=loop, daemon=True).start()
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def record_batch_client(self, port, host="a.test"):
        context = ssl.create_default_context(cafile=self.certs.ca_cert)
        context.set_alpn_protocols(["http/1.1"])
        client = RecordBatchTls(socket.create_connection(("127.0.0.1", port)), context,
                                server_hostname=host)
        self.addCleanup(client.sock.close)
        return client

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


class L7AbuseAndDrainTest(L7TestCase):
    @staticmethod
    def frame(kind, flags, stream_id, payload=b""):
        return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) +
                stream_id.to_bytes(4, "big") + payload)

    def test_rapid_reset_flood_ends_that_connection_only(self):
        """CVE-2023-44487: HEADERS immediately followed by RST_STREAM, thousands of times."""
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "rr" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["h2"])
        # :method GET, :scheme https, :path / (static table), :authority a.test (literal).
        block = bytes([0x82, 0x87, 0x84, 0x01, 0x06]) + b"a.test"
        flood = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0))
        for i in range(5000):
            stream_id = 1 + 2 * i
            flood += self.frame(1, 0x5, stream_id, block)  # HEADERS, END_STREAM|END_HEADERS
            flood += self.frame(3, 0, stream_id, (8).to_bytes(4, "big"))  # RST_STREAM CANCEL
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
        flood = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0))
        flood += self.frame(1, 0x1, 1, bytes([0x82, 0x87, 0x84]))  # END_STREAM, no END_HEADERS
        for _ in range(2000):
            flood += self.frame(9, 0, 1, bytes([0x40, 1]) + b"x" + bytes([1]) + b"y")  # CONTINUATION
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
        frames = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0))
        for i in range(20):
            frames += self.frame(1, 0x4, 1 + 2 * i, block)  # END_HEADERS only
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
        chat = channel.stream_stream("/test.Echo/Chat")
        import queue
        outgoing = queue.Queue()

        def messages():
            while True:
                message = outgoing.get()
                if message is None:
                    return
                yield message

        cancelled = chat(messages(), timeout=20)
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
        outgoing = __import__("queue").Queue()

        def messages():
            while True:
                message = outgoing.get()
                if message is None:
                    return
                yield message

        replies = channel.stream_stream("/test.Echo/Chat")(messages(), timeout=20)
        outgoing.put(b"before")
        self.assertEqual(next(replies), b"echo:before")
        proxy.proc.send_signal(__import__("signal").SIGTERM)
        harness.wait_until(lambda: "draining" in proxy.log(), what="drain")
        time.sleep(0.3)
        outgoing.put(b"during")  # the open stream keeps working after GOAWAY
        self.assertEqual(next(replies), b"echo:during")
        self.assertIsNone(proxy.proc.poll())
        outgoing.put(None)
        self.assertEqual(list(replies), [])
        self.assertEqual(proxy.proc.wait(15), 0)  # closed when the stream ended, long before 10 s
        self.assertIn("stat listener.dr.close.finished 1", proxy.log())


class L7BigBodyTest(L7TestCase):
    GIB = 1 << 30

    def test_one_gigabyte_each_way_holds_memory_flat(self):
        # Sparse files: a gigabyte of zeros that costs no disk.
        with open(os.path.join(self.www, "1g.bin"), "wb") as f:
            f.truncate(self.GIB)
        upload = os.path.join(self.workdir, "upload-1g.bin")
        with open(upload, "wb") as f:
            f.truncate(self.GIB)
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "big" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""",
                                 workers=1)
        port = proxy.port()
        code, _, meta, err = self.curl(port, "/small.html", "a.test", "--http2")  # warm up
        peak_before = harness.peak_rss_kib(proxy.proc.pid)
        download = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
             f"https://a.test:{port}/1g.bin"], capture_output=True, text=True, timeout=240)
        self.assertEqual(download.stdout, f"{self.GIB} 200", download.stderr)
        upload_result = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", "-o", "/dev/null", "-X", "POST", "-T", upload,  # streamed
             "-w", "%{size_upload} %{http_code}", f"https://a.test:{port}/small.html"],
            capture_output=True, text=True, timeout=240)
        self.assertEqual(upload_result.stdout, f"{self.GIB} 200", upload_result.stderr)
        growth = harness.peak_rss_kib(proxy.proc.pid) - peak_before
        print(f"peak RSS growth over 2 GiB proxied: {growth} KiB", flush=True)
        if not harness.sanitized():  # a sanitizer's allocator keeps freed memory resident
            # Flow control bounds the buffering at one stream window (256 KiB) per direction.
            self.assertLess(growth, 16 * 1024)


class Http1Test(L7TestCase):
    """HTTP/1.1 clients (ALPN http/1.1) in front of the same h2c backends."""

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

    def send_raw(self, port, request):
        ctx = self.certs.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        with harness.tls_connect(port, "a.test", ctx) as tls:
            tls.sendall(request)
            data = b""
            try:
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ssl.SSLError, ConnectionError):
                pass
            return data

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


if __name__ == "__main__":
    unittest.main()
