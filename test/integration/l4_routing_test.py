"""L4 SNI routing through the real binary: hostnames to backends, wildcard, refusals."""

import socket
import ssl
import subprocess
import unittest

from test.integration import harness


class L4RoutingTest(harness.ProxyTestCase):
    def setUp(self):
        self.backend_a = self.echo_backend(self.cert_a)
        self.backend_b = self.echo_backend(self.cert_b)
        self.proxy = self.start_proxy(f"""
            listeners {{
              name: "edge"
              address: "127.0.0.1:0"
              proxy_protocol: false
              routes {{ hostname: "a.test"   backend: "{self.backend_a.address}" mode: L4 }}
              routes {{ hostname: "*.b.test" backend: "{self.backend_b.address}" mode: L4 }}
            }}""")
        self.port = self.proxy.port()
        self.ctx = self.certs.client_context()

    def roundtrip(self, server_name, payload=b"ping"):
        with harness.tls_connect(self.port, server_name, self.ctx) as conn:
            conn.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += conn.recv(65536)
            cert = conn.getpeercert()
            return got, dict(x[0] for x in cert["subject"])["commonName"]

    def test_each_hostname_reaches_its_own_backend_and_certificate(self):
        echoed, common_name = self.roundtrip("a.test", b"to a")
        self.assertEqual(echoed, b"to a")
        self.assertEqual(common_name, "a.test")
        echoed, common_name = self.roundtrip("x.b.test", b"to b")
        self.assertEqual(echoed, b"to b")
        self.assertEqual(common_name, "b.test")
        self.assertEqual(self.backend_a.connections, 1)
        self.assertEqual(self.backend_b.connections, 1)
        stats = self.proxy.stats()
        self.assertEqual(stats["route.edge.a.test.upstream_cx_total"], 1)
        self.assertEqual(stats["route.edge.*.b.test.upstream_cx_total"], 1)

    def test_sni_match_is_case_insensitive(self):
        ctx = self.certs.client_context()
        ctx.check_hostname = False  # the certificate names a.test in lower case
        echoed, common_name = self.roundtrip_with(ctx, "A.TeSt")
        self.assertEqual(common_name, "a.test")

    def roundtrip_with(self, ctx, server_name):
        with harness.tls_connect(self.port, server_name, ctx) as conn:
            conn.sendall(b"x")
            return conn.recv(10), dict(x[0] for x in conn.getpeercert()["subject"])["commonName"]

    def test_openssl_s_client_sees_backend_certificates(self):
        for server_name, subject in (("a.test", "CN = a.test"), ("deep.x.b.test", "CN = b.test")):
            result = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-servername",
                 server_name, "-CAfile", self.certs.ca_cert, "-verify_return_error"],
                input="", capture_output=True, text=True, timeout=20)
            self.assertIn(f"subject={subject}", result.stdout, result.stderr)
            self.assertIn("Verify return code: 0 (ok)", result.stdout)

    def test_unknown_sni_is_refused_and_counted(self):
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-servername",
             "c.test"], input="", capture_output=True, text=True, timeout=20)
        self.assertNotIn("subject=", result.stdout)
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            self.roundtrip("b.test")  # the wildcard does not cover its own suffix
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as conn:  # no SNI at all and no default route
                    conn.recv(1)
        self.proxy.wait_stat("listener.edge.close.no_route", 3)
        self.assertEqual(self.backend_a.connections + self.backend_b.connections, 0)

    def test_plain_text_is_closed_with_not_tls(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            self.assertEqual(harness.recv_all(conn), b"")
        self.proxy.wait_stat("listener.edge.close.not_tls")

    def test_fragmented_client_hello_is_reassembled(self):
        hello = harness.client_hello("a.test")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(hello), 7):  # 7-byte TCP segments
                conn.sendall(hello[i:i + 7])
            self.proxy.wait_stat("route.edge.a.test.upstream_cx_total")

    def test_curl_through_the_passthrough(self):
        server = self.openssl_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            listeners {{ name: "curl" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{server.address}" }} }}""")
        port = proxy.port()
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", f"https://a.test:{port}/"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("s_server", result.stdout)  # openssl's -www status page


class DefaultRouteTest(harness.ProxyTestCase):
    def test_default_route_takes_unknown_and_missing_sni(self):
        backend_a = self.echo_backend(self.cert_a)
        backend_b = self.echo_backend(self.cert_b)
        proxy = self.start_proxy(f"""
            listeners {{ name: "d" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend_a.address}" }}
              default_route {{ backend: "{backend_b.address}" }} }}""")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for server_name in ("unknown.test", None):
            with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname=server_name) as conn:
                    conn.sendall(b"hi")
                    self.assertEqual(conn.recv(2), b"hi")
        self.assertEqual(backend_b.connections, 2)
        self.assertEqual(backend_a.connections, 0)


class Ipv6ListenerTest(harness.ProxyTestCase):
    def test_ipv6_listener_and_backend(self):
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback on this machine")
        backend = self.echo_backend(self.cert_a, host="::1")
        proxy = self.start_proxy(f"""
            listeners {{ name: "v6" address: "[::1]:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""")
        with harness.tls_connect(proxy.port(), "a.test", self.certs.client_context(),
                                 host="::1") as conn:
            conn.sendall(b"six")
            self.assertEqual(conn.recv(3), b"six")


if __name__ == "__main__":
    unittest.main()
