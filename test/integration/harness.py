"""Integration-test harness: the real mc-proxy binary, real TLS backends, real clients.

Everything listens on 127.0.0.1 (or ::1) on ports the OS picks, and every process a test starts
is stopped when the test ends.
"""

import asyncio
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

WORKSPACE = "mcproxy"


def binary(name):
    """Path of a built binary: from Bazel's runfiles, or MC_PROXY_BIN_DIR when run by hand."""
    override = os.environ.get("MC_PROXY_BIN_DIR")
    if override:
        return os.path.join(override, name)
    return os.path.join(os.environ["TEST_SRCDIR"], WORKSPACE, "source", "exe", name)


def tool(name):
    """Path of a helper built under tools/ (tools/bench/loadgen, ...), like binary()."""
    override = os.environ.get("MC_PROXY_BIN_DIR")
    if override:
        return os.path.join(override, os.path.basename(name))
    return os.path.join(os.environ["TEST_SRCDIR"], WORKSPACE, "tools", name)


def module_file(path):
    """A plugin module built here: "examples/modules/libsni_guard.so", "test/modules/libprobe.so"."""
    return os.path.join(os.environ["TEST_SRCDIR"], WORKSPACE, path)


def wait_port(port, process=None, what="a listener"):
    """Waits until 127.0.0.1:port accepts connections (or `process` exited)."""
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return process is not None and process.poll() is not None
    wait_until(up, what=what)
    if process is not None and process.poll() is not None:
        raise AssertionError(f"{what} exited")


def sanitized():
    """True when mc-proxy was built with a sanitizer (bazel test --config=asan/ubsan)."""
    with open(binary("mc-proxy"), "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__ubsan_handle" in data


SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                              r"SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)")


def sanitizer_report(log):
    """The first sanitizer report in a process's output (with what follows it), or ''."""
    match = SANITIZER_REPORT.search(log)
    return log[max(0, match.start() - 200):match.start() + 4000] if match else ""


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Certs:
    """A test CA and leaf certificates signed by it, made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_cert = os.path.join(directory, "ca.crt")
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2",
                  "-subj", "/CN=mc-proxy test CA")

    def _run(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def leaf(self, name, sans):
        """Returns (cert_path, key_path) for a certificate with CN=name and the given SANs."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n")
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self._run("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                  "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        ctx.check_hostname = True
        return ctx


class EventLoopThread:
    """An asyncio loop on a background thread, for backends that serve many connections."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class TlsEchoBackend:
    """A TLS server with its own certificate that echoes every byte back until EOF."""

    def __init__(self, loop_thread, cert, key, host="127.0.0.1"):
        self.loop_thread = loop_thread
        self.connections = 0
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        async def handle(reader, writer):
            self.connections += 1
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                writer.close()

        async def start():
            return await asyncio.start_server(handle, host, 0, ssl=ctx)

        self.server = loop_thread.run(start())
        self.port = self.server.sockets[0].getsockname()[1]
        self.address = f"{host}:{self.port}" if ":" not in host else f"[{host}]:{self.port}"

    def close(self):
        self.loop_thread.run(self._close())

    async def _close(self):
        self.server.close()


class OpensslServer:
    """`openssl s_server -www` with a given certificate: a real, independent TLS backend."""

    def __init__(self, cert, key):
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key,
             "-www", "-naccept", "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        line = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"ACCEPT 127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self.address = f"127.0.0.1:{self.port}"
                return
        raise AssertionError(f"openssl s_server did not start: {line}")

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()


def accept_in_threads(listener, handle):
    """Accepts on `listener` until it is closed, running handle(conn) on a thread per
    connection."""
    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def relay_both_ways(conn, upstream, timeout=30):
    """Copies bytes between two connected sockets until both directions have ended (each end
    passed on as a half-close), then closes both."""
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
    back.start()
    pump(conn, upstream)
    back.join(timeout)
    conn.close()
    upstream.close()


def read_proxy_header(sock):
    """Reads exactly one PROXY v1 or v2 header from a raw socket; returns a dict of what it says."""
    first = b""
    while len(first) < 16:
        chunk = sock.recv(16 - len(first))
        if not chunk:
            raise ConnectionError("closed before a PROXY header")
        first += chunk
    if first.startswith(b"PROXY "):
        line = first
        while not line.endswith(b"\r\n"):
            line += sock.recv(1)
        parts = line.decode().split()
        if parts[1] == "UNKNOWN":
            return {"version": 1, "client": None}
        return {"version": 1, "client": f"{parts[2]}:{parts[4]}", "destination": f"{parts[3]}:{parts[5]}"}
    length = int.from_bytes(first[14:16], "big")
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    info = {"version": 2, "client": None}
    family = first[13] >> 4
    if family == 1:
        info["client"] = f"{socket.inet_ntop(socket.AF_INET, body[0:4])}:{int.from_bytes(body[8:10], 'big')}"
        tlvs = body[12:]
    elif family == 2:
        info["client"] = f"[{socket.inet_ntop(socket.AF_INET6, body[0:16])}]:{int.from_bytes(body[32:34], 'big')}"
        tlvs = body[36:]
    else:
        tlvs = b""
    while len(tlvs) >= 3:
        kind, size = tlvs[0], int.from_bytes(tlvs[1:3], "big")
        if kind == 0x02:
            info["authority"] = tlvs[3:3 + size].decode()
        tlvs = tlvs[3 + size:]
    return info


class ProxyReportingTlsBackend:
    """A TLS backend behind a PROXY-sending hop: it reads the PROXY header, completes TLS with the
    rest of the stream, and answers each connection with one line saying what the header said."""

    def __init__(self, cert, key):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.headers = []
        accept_in_threads(self.listener, self._handle)

    def _handle(self, conn):
        try:
            conn.settimeout(10)
            header = read_proxy_header(conn)
            self.headers.append(header)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(f"client={header['client']} authority={header.get('authority')}\n".encode())
                tls.unwrap()
        except (OSError, ssl.SSLError, ConnectionError, ValueError):
            conn.close()

    def close(self):
        self.listener.close()


def free_port():
    """A port the OS picked and released, for programs (haproxy) that cannot report their own."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


class Haproxy:
    """Debian's haproxy on a config the test writes, in the foreground."""

    def __init__(self, config_text, workdir):
        self.path = os.path.join(workdir, f"haproxy-{time.monotonic_ns()}.cfg")
        with open(self.path, "w") as f:
            f.write(config_text)
        # Debian installs haproxy in /usr/sbin, which a test's PATH does not hold.
        executable = shutil.which("haproxy") or "/usr/sbin/haproxy"
        check = subprocess.run([executable, "-c", "-q", "-f", self.path], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise AssertionError("haproxy config refused:\n" + check.stdout + check.stderr)
        self.proc = subprocess.Popen([executable, "-db", "-f", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def wait_listening(self, port):
        wait_port(port, self.proc, what="haproxy")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Nghttpd:
    """nghttpd serving a directory: h2c (prior knowledge), or h2 over TLS with `cert_key`."""

    def __init__(self, directory, cert_key=None, port=None):
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        executable = shutil.which("nghttpd") or "/usr/sbin/nghttpd"
        tls = [cert_key[1], cert_key[0]] if cert_key else []
        self.proc = subprocess.Popen([executable, *([] if cert_key else ["--no-tls"]),
                                      "--address=127.0.0.1", "-d", directory, str(self.port), *tls],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        wait_port(self.port, self.proc, what="nghttpd")

    def close(self):
        self.proc.kill()
        self.proc.wait(5)


class Proxy:
    """The real mc-proxy binary on a config, with its log collected."""

    def __init__(self, config_text, workdir, workers=2, extra_args=(), expect_ready=True,
                 command_prefix=(), start_timeout=10.0, cwd=None):
        self.config_path = os.path.join(workdir, f"mc-proxy-{time.monotonic_ns()}.textproto")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.lines = []
        self.lock = threading.Lock()
        # command_prefix: e.g. ("prlimit", "--nofile=40:40") to run the proxy under a limit.
        args = [*command_prefix, binary("mc-proxy"), "--config", self.config_path,
                "--workers", str(workers),
                "--log-level", os.environ.get("MC_PROXY_TEST_LOG_LEVEL", "info"), *extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, cwd=cwd)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.listening = {}
        if expect_ready:
            wait_until(lambda: "started" in self.log() or self.proc.poll() is not None,
                       timeout=start_timeout, what="mc-proxy to start")
            if self.proc.poll() is not None:
                raise AssertionError("mc-proxy exited at start:\n" + self.log())
            for match in re.finditer(r"listener (\S+) listening on (\S+)", self.log()):
                self.listening[match.group(1)] = match.group(2)

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line)

    def log(self):
        with self.lock:
            return "".join(self.lines)

    def port(self, listener=None):
        address = self.listening[listener] if listener else next(iter(self.listening.values()))
        return int(address.rsplit(":", 1)[1])

    def stats(self):
        """Every non-zero stat, read from the log after SIGUSR1."""
        with self.lock:
            start = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)

        def dump_done():
            with self.lock:
                tail = self.lines[start:]
            return tail if any("stats dump done" in l for l in tail) else None

        tail = wait_until(dump_done, what="stats dump")
        values = {}
        for line in tail:
            match = re.search(r"\] stat (\S+) (-?\d+)$", line.strip())
            if match:
                values[match.group(1)] = int(match.group(2))
        return values

    def wait_stat(self, name, at_least=1, timeout=10):
        return wait_until(lambda: self.stats().get(name, 0) >= at_least, timeout=timeout,
                          interval=0.1, what=f"stat {name} >= {at_least}")

    def terminate(self, timeout=20):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        """Stops the proxy (test cleanup) and fails the test if it crashed or a sanitizer spoke.

        SIGTERM first, so that a sanitized build gets to run LeakSanitizer at exit; SIGKILL when
        it is still draining a few seconds later."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # Killed by anything but our SIGTERM/SIGKILL (SIGSEGV, SIGABRT, ...): it crashed.
        crashed = self.proc.returncode < 0 and \
            -self.proc.returncode not in (signal.SIGKILL, signal.SIGTERM)
        self.reader.join(5)
        self.proc.stdout.close()
        # Bazel keeps this directory (outputs.zip in the test logs), so a failure in CI leaves
        # the proxy's own account of what happened.
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs:
            name = os.path.basename(self.config_path).replace(".textproto", ".log")
            with open(os.path.join(outputs, name), "w") as f:
                f.write(self.log())
        report = sanitizer_report(self.log())
        if report:
            raise AssertionError("mc-proxy's sanitizer reported:\n" + report)
        if crashed:
            raise AssertionError(f"mc-proxy died of signal {-self.proc.returncode}:\n"
                                 + self.log()[-3000:])


def short_socket_path(test, name):
    """A Unix socket path under /tmp: Bazel's TEST_TMPDIR is longer than sun_path allows."""
    directory = tempfile.mkdtemp(prefix="mcadm", dir="/tmp")  # mode 0700
    test.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, name)


def ctl(*args, check=True, timeout=120):
    """Runs mcproxyctl; returns the CompletedProcess."""
    result = subprocess.run([binary("mcproxyctl"), *args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"mcproxyctl {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def filter_chain(tls_inspector="", tcp_proxy=""):
    """The built-in chain spelled out, with typed settings for tls_inspector and tcp_proxy."""
    api = "type.googleapis.com/mcproxy.extensions.filters.network"
    return f"""
      filters {{ name: "mcproxy.filters.network.tls_inspector"
        typed_config {{ [{api}.tls_inspector.v1.TlsInspector] {{ {tls_inspector} }} }} }}
      filters {{ name: "mcproxy.filters.network.router" }}
      filters {{ name: "mcproxy.filters.network.tcp_proxy"
        typed_config {{ [{api}.tcp_proxy.v1.TcpProxy] {{ {tcp_proxy} }} }} }}"""


def hcm_chain(settings):
    """An L7 chain (tls_inspector, router, http_connection_manager) with HCM `settings`."""
    api = "type.googleapis.com/mcproxy.extensions.filters.network"
    return f"""
      filters {{ name: "mcproxy.filters.network.tls_inspector" }}
      filters {{ name: "mcproxy.filters.network.router" }}
      filters {{ name: "mcproxy.filters.network.http_connection_manager"
        typed_config {{ [{api}.http_connection_manager.v1.HttpConnectionManager] {{ {settings} }} }} }}"""


def tls_connect(port, server_name, ctx, host="127.0.0.1", timeout=10, source=None):
    """TLS to host:port; `source` picks the client's own address (any 127.x works on loopback)."""
    raw = socket.create_connection((host, port), timeout=timeout,
                                   source_address=(source, 0) if source else None)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def read_line(tls):
    data = b""
    while not data.endswith(b"\n"):
        chunk = tls.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode()


def client_hello(server_name):
    """The bytes of a real ClientHello for `server_name`, from Python's ssl (OpenSSL)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def closed_by_peer(sock, timeout=10):
    """True when the peer closes the connection without sending anything: FIN, or RST when our
    own unread bytes were still in its receive buffer."""
    try:
        return recv_all(sock, timeout) == b""
    except ConnectionResetError:
        return True


def read_until_closed(tls, data=b""):
    """Sends `data`, then reads until the peer closes; a reset or TLS error also ends it."""
    received = b""
    try:
        if data:
            tls.sendall(data)
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            received += chunk
    except (ssl.SSLError, ConnectionError):
        pass
    return received


def recv_all(sock, timeout=10):
    """Reads until EOF."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def peak_rss_kib(pid):
    """VmHWM: the most resident memory the process ever had."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ProxyTestCase(unittest.TestCase):
    """Gives each test a temp dir, certs for a.test and b.test, a backend loop and cleanup."""

    @classmethod
    def setUpClass(cls):
        base = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
        cls.workdir = tempfile.mkdtemp(dir=base)
        cls.certs = Certs(cls.workdir)
        cls.cert_a = cls.certs.leaf("a.test", ["a.test"])
        cls.cert_b = cls.certs.leaf("b.test", ["b.test", "*.b.test"])
        cls.loop = EventLoopThread()

    @classmethod
    def tearDownClass(cls):
        cls.loop.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def make_www(cls, files):
        """A document root for nghttpd under the class's temp dir: small.html plus `files`
        (name -> bytes, or an int for a sparse file of that size)."""
        www = os.path.join(cls.workdir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "small.html"), "w") as f:
            f.write("hello from nghttpd\n")
        for name, content in files.items():
            with open(os.path.join(www, name), "wb") as f:
                if isinstance(content, int):
                    f.truncate(content)
                else:
                    f.write(content)
        return www

    def nghttpd(self, cert_key=None, port=None):
        """nghttpd serving the class's `www` (see make_www), stopped when the test ends."""
        server = Nghttpd(self.www, cert_key, port=port)
        self.addCleanup(server.close)
        return server

    def write_config(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_proxy(self, config_text, **kwargs):
        proxy = Proxy(config_text, self.workdir, **kwargs)
        self.addCleanup(proxy.kill)
        return proxy

    def echo_backend(self, cert_key, host="127.0.0.1"):
        backend = TlsEchoBackend(self.loop, *cert_key, host=host)
        self.addCleanup(backend.close)
        return backend

    def reporting_backend(self, cert_key):
        backend = ProxyReportingTlsBackend(*cert_key)
        self.addCleanup(backend.close)
        return backend

    def haproxy(self, config_text, port):
        instance = Haproxy(config_text, self.workdir)
        self.addCleanup(instance.close)
        instance.wait_listening(port)
        return instance

    def openssl_backend(self, cert_key):
        backend = OpensslServer(*cert_key)
        self.addCleanup(backend.close)
        return backend
