"""Timeouts and backend failures, each closing one connection with its counted reason."""

import socket
import time
import unittest

from test.integration import harness


class TimeoutsTest(harness.ProxyTestCase):
    def test_client_that_sends_nothing_is_closed_at_the_handshake_timeout(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            listeners {{ name: "hs" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }}
              {harness.filter_chain(tls_inspector="handshake_timeout_ms: 300")} }}""")
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as silent:
            self.assertEqual(harness.recv_all(silent), b"")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertLess(elapsed, 5)
        # Half a ClientHello is no better than none.
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as partial:
            partial.sendall(harness.client_hello("a.test")[:40])
            self.assertEqual(harness.recv_all(partial), b"")
        proxy.wait_stat("listener.hs.close.handshake_timeout", 2)
        self.assertEqual(backend.connections, 0)

    def test_idle_connection_is_closed_at_the_idle_timeout(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            listeners {{ name: "idle" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }}
              {harness.filter_chain(tcp_proxy="idle_timeout_ms: 600")} }}""")
        with harness.tls_connect(proxy.port(), "a.test", self.certs.client_context()) as conn:
            # Activity keeps it open past the timeout...
            for _ in range(4):
                conn.sendall(b"tick")
                self.assertEqual(conn.recv(4), b"tick")
                time.sleep(0.25)
            # ...silence closes it.
            started = time.monotonic()
            conn.settimeout(10)
            self.assertEqual(conn.recv(1), b"")
            self.assertLess(time.monotonic() - started, 5)
        proxy.wait_stat("listener.idle.close.idle_timeout")

    def test_refused_backend_closes_the_client_and_is_counted(self):
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there now
        proxy = self.start_proxy(f"""
            listeners {{ name: "refused" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{port}" }} }}""")
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as conn:
            conn.sendall(harness.client_hello("a.test"))
            try:
                self.assertEqual(harness.recv_all(conn), b"")
            except ConnectionResetError:
                pass
        proxy.wait_stat("listener.refused.close.upstream_connect_failed")
        proxy.wait_stat("route.refused.a.test.upstream_cx_connect_fail")

    def test_backend_that_never_accepts_hits_the_connect_timeout(self):
        # A listener whose accept queue is full drops further SYNs, so connect() hangs.
        backend = socket.socket()
        self.addCleanup(backend.close)
        backend.bind(("127.0.0.1", 0))
        backend.listen(0)
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(backend.getsockname())
            fillers.append(filler)
        self.addCleanup(lambda: [f.close() for f in fillers])
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(backend.getsockname())
            probe.close()
            self.skipTest("this kernel completes connections to a full accept queue")
        except (socket.timeout, OSError):
            probe.close()
        proxy = self.start_proxy(f"""
            listeners {{ name: "ct" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{backend.getsockname()[1]}" }}
              {harness.filter_chain(tcp_proxy="connect_timeout_ms: 400")} }}""")
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as conn:
            conn.sendall(harness.client_hello("a.test"))
            self.assertEqual(harness.recv_all(conn), b"")
        self.assertLess(time.monotonic() - started, 5)
        proxy.wait_stat("listener.ct.close.upstream_connect_timeout")

    def test_oversized_client_hello_is_refused(self):
        proxy = self.start_proxy("""
            listeners { name: "big" address: "127.0.0.1:0"
              routes { hostname: "a.test" backend: "127.0.0.1:9" } }""")
        # A handshake record announcing a 60 KB ClientHello, above the 16 KB default.
        header = bytes([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xea, 0x60])
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as conn:
            conn.sendall(header + b"\0" * 1000)
            self.assertEqual(harness.recv_all(conn), b"")
        proxy.wait_stat("listener.big.close.client_hello_too_large")


if __name__ == "__main__":
    unittest.main()
