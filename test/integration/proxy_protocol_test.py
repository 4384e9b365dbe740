"""PROXY protocol in and out, with real peers: haproxy on either side, and two mc-proxy tiers.

Each client picks its own loopback source address (127.0.0.5, ...), so the address the last
hop reports proves it was carried through every tier rather than read off the TCP peer."""

import os
import socket
import ssl
import subprocess
import time
import unittest

from test.integration import harness


class ProxyProtocolTest(harness.ProxyTestCase):
    def client_ctx(self):
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        return ctx

    def report_through(self, port, source, name="a.test"):
        with harness.tls_connect(port, name, self.client_ctx(), source=source) as tls:
            return harness.read_line(tls)

    def origin(self, backend, extra_listener="", extra_top=""):
        """An origin mc-proxy: accepts PROXY from loopback peers, sends PROXY v2 on."""
        return self.start_proxy(f"""
            {extra_top}
            listeners {{ name: "origin" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.1/32"
              routes {{ hostname: "a.test" backend: "{backend.address}" send_proxy_protocol: true }}
              {extra_listener} }}""")

    def edge(self, origin_port, version=2):
        return self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{origin_port}"
                        send_proxy_protocol: true proxy_protocol_version: {version} }} }}""")

    def test_haproxy_edge_sends_v2_and_the_origin_sees_the_real_client(self):
        backend = self.reporting_backend(self.cert_a)
        origin = self.origin(backend, extra_top='firewall { blocked_ips: "127.0.0.7" }')
        port = harness.free_port()
        self.haproxy(f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend edge
    bind 127.0.0.1:{port}
    default_backend origin
backend origin
    server origin 127.0.0.1:{origin.port()} send-proxy-v2
""", port)
        line = self.report_through(port, "127.0.0.5")
        self.assertTrue(line.startswith("client=127.0.0.5:"), line)
        self.assertIn("authority=a.test", line)  # the SNI, as PP2_TYPE_AUTHORITY
        # The origin's firewall judges the address inside the PROXY header, not haproxy's.
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            self.report_through(port, "127.0.0.7")
        origin.wait_stat("listener.origin.close.firewall_blocked_ip")
        self.assertEqual(len(backend.headers), 1)  # the blocked client never reached it

    def test_mc_proxy_edge_sends_v1_and_v2_to_haproxy(self):
        pem = os.path.join(self.workdir, "haproxy-a.pem")
        with open(pem, "w") as f:
            f.write(open(self.cert_a[0]).read() + open(self.cert_a[1]).read())
        port = harness.free_port()
        self.haproxy(f"""
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend origin
    bind 127.0.0.1:{port} accept-proxy ssl crt {pem}
    http-request return status 200 content-type text/plain lf-string "src=%[src] sni=%[ssl_fc_sni]"
""", port)
        for version in (1, 2):
            edge = self.edge(port, version)
            result = subprocess.run(
                ["curl", "-sS", "--max-time", "20", "--interface", f"127.0.0.{10 + version}",
                 "--cacert", self.certs.ca_cert, "--resolve", f"a.test:{edge.port()}:127.0.0.1",
                 f"https://a.test:{edge.port()}/"], capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout, f"src=127.0.0.{10 + version} sni=a.test")

    def test_two_mc_proxy_tiers_carry_the_client_and_the_origin_firewall_blocks_it(self):
        backend = self.reporting_backend(self.cert_a)
        origin = self.origin(backend, extra_listener='firewall { blocked_cidrs: "127.0.0.64/26" }')
        edge = self.edge(origin.port())
        line = self.report_through(edge.port(), "127.0.0.5")
        self.assertTrue(line.startswith("client=127.0.0.5:"), line)
        # A client inside the blocked network: refused at the origin, though the TCP peer there
        # is the edge (127.0.0.1), which stays allowed.
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            self.report_through(edge.port(), "127.0.0.70")
        origin.wait_stat("listener.origin.close.firewall_blocked_cidr")
        self.assertEqual(len(backend.headers), 1)
        line = self.report_through(edge.port(), "127.0.0.6")
        self.assertTrue(line.startswith("client=127.0.0.6:"), line)
        # The origin's byte counts are the client's bytes: the PROXY header it sent is not one.
        stats = origin.stats()
        self.assertGreater(stats["route.origin.a.test.bytes_from_downstream"], 0)

    def test_untrusted_peer_cannot_claim_an_address(self):
        backend = self.reporting_backend(self.cert_a)
        origin = self.start_proxy(f"""
            listeners {{ name: "origin" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.2/32"
              routes {{ hostname: "a.test" backend: "{backend.address}" send_proxy_protocol: true }} }}""")
        forged = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\n" + harness.client_hello("a.test")
        with socket.create_connection(("127.0.0.1", origin.port()), timeout=10) as conn:
            conn.sendall(forged)
            self.assertTrue(harness.closed_by_peer(conn))
        origin.wait_stat("listener.origin.close.proxy_protocol_untrusted_source")
        self.assertEqual(backend.headers, [])
        # The trusted peer is let in.
        with socket.create_connection(("127.0.0.1", origin.port()), timeout=10,
                                      source_address=("127.0.0.2", 0)) as conn:
            conn.sendall(forged)
            harness.wait_until(lambda: len(backend.headers) == 1, what="backend to be reached")
        self.assertEqual(backend.headers[0]["client"], "203.0.113.9:5555")

    def test_broken_headers_close_one_connection_each_with_a_reason(self):
        backend = self.reporting_backend(self.cert_a)
        origin = self.start_proxy(f"""
            listeners {{ name: "o" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.0/8"
              routes {{ hostname: "a.test" backend: "{backend.address}" send_proxy_protocol: true }}
              {harness.filter_chain()}
            }}""".replace('filters { name: "mcproxy.filters.network.tls_inspector"', '''filters { name: "mcproxy.filters.network.proxy_protocol"
                typed_config { [type.googleapis.com/mcproxy.extensions.filters.network.proxy_protocol.v1.ProxyProtocol] { header_timeout_ms: 400 } } }
              filters { name: "mcproxy.filters.network.tls_inspector"''', 1))
        port = origin.port()
        # Every header of the corpus: test/conformance/proxy_protocol_corpus_test.
        corpus = os.path.join(os.environ["TEST_SRCDIR"], "mcproxy", "test", "fuzz", "corpus",
                              "proxy_protocol")
        for name in ("invalid_v1_port_too_big", "invalid_v2_version_3"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn, \
                    open(os.path.join(corpus, name), "rb") as header:
                conn.sendall(header.read())
                self.assertTrue(harness.closed_by_peer(conn), name)
        origin.wait_stat("listener.o.close.proxy_protocol_bad_header", 2)
        # Half a header, then silence: the header timeout.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"PROXY TCP4 1.2.3.4")
            started = time.monotonic()
            self.assertEqual(harness.recv_all(conn), b"")
            self.assertLess(time.monotonic() - started, 5)
        origin.wait_stat("listener.o.close.proxy_protocol_timeout")
        # The process is unharmed: a v2 header sent one byte at a time, then TLS, still works.
        header = bytes.fromhex("0d0a0d0a000d0a515549540a2111000c") + socket.inet_aton("198.51.100.4") \
            + socket.inet_aton("127.0.0.1") + (4321).to_bytes(2, "big") + (443).to_bytes(2, "big")
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in header:
            raw.sendall(bytes([byte]))
        with self.client_ctx().wrap_socket(raw, server_hostname="a.test") as tls:
            line = harness.read_line(tls)
        self.assertEqual(line, "client=198.51.100.4:4321 authority=a.test\n")


if __name__ == "__main__":
    unittest.main()
