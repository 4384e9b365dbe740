"""What the L7 integration tests share: backends (gRPC, HTTP/1.1, raw TCP), clients that send
TLS records in batches, HTTP/2 frame helpers, a CA for client certificates and OCSP responses
(Pki), and L7TestCase with the route and client helpers."""

import datetime
import os
import queue
import socket
import ssl
import subprocess
import threading
import time
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from test.integration import harness


NOW = datetime.datetime.utcnow()
DAY = datetime.timedelta(days=1)


class Pki:
    """A CA (python3-cryptography) that issues client certificates and OCSP responses."""

    def __init__(self, directory, name, key_path=None, cert_path=None):
        self.dir = directory
        if key_path:  # an existing CA (the harness's, which issued the server certificates)
            with open(key_path, "rb") as f:
                self.key = serialization.load_pem_private_key(f.read(), None)
            with open(cert_path, "rb") as f:
                self.cert = x509.load_pem_x509_certificate(f.read())
            self.cert_path = cert_path
            return
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - DAY).not_valid_after(NOW + 2 * DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = self.write(name + ".crt", self.cert.public_bytes(serialization.Encoding.PEM))

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def client(self, name, dns=(), uris=(), not_before=None, not_after=None):
        """(cert path, key path) of a client certificate this CA issued."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(d) for d in dns] + [x509.UniformResourceIdentifier(u) for u in uris]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test, Inc")]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or NOW - DAY)
                   .not_valid_after(not_after or NOW + DAY))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_path = self.write(name + ".key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return self.write(name + ".crt", cert.public_bytes(serialization.Encoding.PEM)), key_path

    def ocsp_response(self, cert_path, this_update, next_update, status=ocsp.OCSPCertStatus.GOOD):
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.cert, algorithm=hashes.SHA1(), cert_status=status,
            this_update=this_update, next_update=next_update,
            revocation_time=NOW - DAY if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


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
        self.active = 0  # connections open now
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        harness.accept_in_threads(self.listener, self._relay)

    def _relay(self, conn):
        with self.lock:
            self.active += 1
        try:
            self._relay_open(conn)
        finally:
            with self.lock:
                self.active -= 1

    def _relay_open(self, conn):
        try:
            self.headers.append(harness.read_proxy_header(conn))
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except (OSError, ConnectionError):
            conn.close()
            return

        harness.relay_both_ways(conn, upstream)

    def close(self):
        self.listener.close()


class Http1Backend:
    """An HTTP/1.1 keep-alive backend (Python's http.server) that counts its connections and
    records each request's path and headers. GET /file/NAME serves bytes with a Content-Length,
    GET /chunked answers chunked, GET /headers answers with the request's headers (one
    "name: value" line each) and its own `name`, and POST answers with the size and sha256 of
    the body it got (chunked or not) and its X-Forwarded-For. With `cert_key` it serves TLS
    (ALPN http/1.1)."""

    def __init__(self, files, cert_key=None, name="backend"):
        import http.server
        backend = self
        self.connections = 0  # accepted so far
        self.open = 0         # open now
        self.requests = []  # (path, {lower-case name: value})

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                backend.connections += 1
                backend.open += 1

            def finish(self):
                try:
                    super().finish()
                finally:
                    backend.open -= 1

            def log_message(self, *args):
                pass

            def reply(self, body, chunked=False, extra=()):
                backend.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                for header, value in extra:
                    self.send_header(header, value)
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
                elif self.path.startswith("/file/"):
                    self.reply(files[self.path.rsplit("/", 1)[1]])
                else:
                    lines = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
                    self.reply(f"backend={name}\n{lines}".encode(),
                               extra=(("X-Backend-Name", name), ("X-Internal", "secret")))

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
        if cert_key:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert_key)
            context.set_alpn_protocols(["http/1.1"])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
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

    def open_chat(self, channel):
        """A bidirectional /test.Echo/Chat call: (queue of messages to send, put None to end;
        iterator over the replies)."""
        outgoing = queue.Queue()

        def messages():
            while True:
                message = outgoing.get()
                if message is None:
                    return
                yield message

        return outgoing, channel.stream_stream("/test.Echo/Chat")(messages(), timeout=20)

    def http1_backend(self, files=None, cert_key=None, name="backend"):
        backend = Http1Backend(files or {}, cert_key, name)
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

    def threaded_raw_backend(self, serve):
        """A TCP backend running serve(conn) on a thread of its own for each connection."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        accepted = []
        self.addCleanup(lambda: [conn.close() for conn in accepted])

        def handle(conn):
            accepted.append(conn)
            serve(conn)

        harness.accept_in_threads(listener, handle)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def record_batch_client(self, port, host="a.test"):
        context = ssl.create_default_context(cafile=self.certs.ca_cert)
        context.set_alpn_protocols(["http/1.1"])
        client = RecordBatchTls(socket.create_connection(("127.0.0.1", port)), context,
                                server_hostname=host)
        self.addCleanup(client.sock.close)
        return client

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
