"""Access logs through the real binary: one JSON line per L4 connection, per L7 request and per
refused connection (firewall, no route, bad PROXY header, failed handshake); TEXT lines to
standard output; a log rotated under a running proxy and reopened on SIGUSR1 without losing a
line; x-request-id generated, forwarded to the backend and logged; a path that cannot be
opened refused as a config error naming the field."""

import json
import os
import signal
import socket
import ssl
import subprocess

from test.integration import harness
from test.integration.l7_harness import L7TestCase


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class AccessLogTest(L7TestCase):
    def log_path(self, name):
        return os.path.join(self.workdir, name)

    def wait_lines(self, path, count):
        """The log's lines once it has at least `count` (the writer thread is asynchronous)."""
        return harness.wait_until(lambda: len(read_lines(path)) >= count and read_lines(path),
                                  what=f"{count} lines in {path}")

    def test_json_lines_for_connections_requests_and_refusals(self):
        l4_backend = self.echo_backend(self.cert_b)
        l7_backend = self.http1_backend(name="web")
        path = self.log_path("all.log")
        proxy = self.start_proxy(f"""
            access_log {{ path: "{path}" }}
            firewall {{ blocked_ips: "127.0.0.9" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", l7_backend.address, self.cert_a, "backend_protocol: HTTP1")}
              routes {{ hostname: "b.test" backend: "127.0.0.1:{l4_backend.port}" }} }}
            listeners {{ name: "origin" address: "127.0.0.2:0" proxy_protocol: true
              trusted_sources: "127.0.0.1/32"
              routes {{ hostname: "b.test" backend: "127.0.0.1:{l4_backend.port}" }} }}""")
        port = proxy.port("edge")
        # An L7 request (HTTP/2), and an L4 connection carrying 5 bytes each way.
        code, body, meta, err = self.curl(port, "/hello?x=1", "a.test", "--http2",
                                          "-A", "probe/1.0")
        self.assertEqual(code, 0, err)
        ctx = self.certs.client_context()
        with harness.tls_connect(port, "b.test", ctx) as tls:
            tls.sendall(b"hello")
            self.assertEqual(tls.recv(5), b"hello")
        # Refused: an unknown SNI, a blocked address, a bad PROXY header, a failed handshake.
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            with harness.tls_connect(port, "nowhere.test", ctx):
                pass
        with self.assertRaises((ssl.SSLError, ConnectionError, socket.timeout)):
            with harness.tls_connect(port, "a.test", ctx, source="127.0.0.9"):
                pass
        with socket.create_connection(("127.0.0.2", proxy.port("origin"))) as raw:
            raw.sendall(b"PROXY GARBAGE\r\n")
            harness.closed_by_peer(raw)
        untrusting = ssl.create_default_context()  # does not know the test CA: alerts
        with self.assertRaises(ssl.SSLError):
            with harness.tls_connect(port, "a.test", untrusting):
                pass

        lines = self.wait_lines(path, 6)
        requests = [l for l in lines if l["kind"] == "request"]
        connections = [l for l in lines if l["kind"] == "connection"]
        self.assertEqual(len(requests), 1, lines)
        request = requests[0]
        self.assertEqual(request["method"], "GET")
        self.assertEqual(request["path"], "/hello?x=1")
        self.assertEqual(request["authority"], f"a.test:{port}")
        self.assertEqual(request["protocol"], "HTTP/2")
        self.assertEqual(request["status"], 200)
        self.assertEqual(request["alpn"], "h2")
        self.assertEqual(request["tls_version"], "TLSv1.3")
        self.assertTrue(request["tls_cipher"])
        self.assertEqual(request["user_agent"], "probe/1.0")
        self.assertEqual(request["route"], "a.test")
        self.assertEqual(request["mode"], "L7")
        self.assertEqual(request["backend"], l7_backend.address)
        self.assertEqual(request["client_ip"], "127.0.0.1")
        self.assertEqual(request["listener"], "edge")
        self.assertEqual(request["response_bytes"], len(body))
        self.assertIsInstance(request["upstream_connect_ms"], int)
        self.assertIsInstance(request["upstream_response_ms"], int)
        self.assertRegex(request["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        by_reason = {l["close_reason"]: l for l in connections}
        l4 = by_reason["finished"]
        self.assertEqual((l4["mode"], l4["sni"], l4["bytes_from_client"] > 5,
                          l4["bytes_to_client"] > 5), ("L4", "b.test", True, True))
        self.assertEqual(l4["backend"], f"127.0.0.1:{l4_backend.port}")
        self.assertEqual(by_reason["no_route"]["sni"], "nowhere.test")
        self.assertEqual(by_reason["firewall_blocked_ip"]["client_ip"], "127.0.0.9")
        self.assertEqual(by_reason["proxy_protocol_bad_header"]["listener"], "origin")
        failed = by_reason["tls_handshake_failed"]
        self.assertEqual((failed["sni"], failed["tls_failure"]), ("a.test", "client_alert"))
        self.assertEqual(len(connections), 5, connections)  # the L7 connection is its request's

    def test_text_lines_go_to_standard_output(self):
        backend = self.http1_backend(name="web")
        proxy = self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              access_log {{ path: "-" format: TEXT
                            text_format: "ACCESS %CLIENT_IP% %SNI% %METHOD% %PATH% %STATUS% %UPSTREAM_CONNECT_MS%" }}
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""")
        code, body, meta, err = self.curl(proxy.port(), "/t", "a.test", "--http1.1")
        self.assertEqual(code, 0, err)
        line = harness.wait_until(
            lambda: next((l for l in proxy.log().splitlines() if l.startswith("ACCESS ")), None),
            what="the access line on stdout")
        self.assertRegex(line, r"^ACCESS 127\.0\.0\.1 a\.test GET /t 200 \d+$")

    def logging_web_proxy(self, name):
        """A proxy logging to the file `name` in front of an HTTP/1.1 backend:
        (proxy, backend, log path)."""
        backend = self.http1_backend(name="web")
        path = self.log_path(name)
        proxy = self.start_proxy(f"""
            access_log {{ path: "{path}" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""")
        return proxy, backend, path

    def test_a_rotated_log_is_reopened_on_sigusr1_and_no_line_is_lost(self):
        proxy, _, path = self.logging_web_proxy("rotated.log")
        port = proxy.port()

        def requests(tag, count):
            for i in range(count):
                code, _, meta, err = self.curl(port, f"/{tag}/{i}", "a.test", "--http1.1")
                self.assertEqual((code, meta.split()[0]), (0, "200"), err)

        requests("before", 5)
        self.wait_lines(path, 5)
        os.rename(path, path + ".1")  # logrotate: rename, then the signal
        requests("between", 3)  # still written to the renamed file, as with any daemon
        self.wait_lines(path + ".1", 8)
        proxy.proc.send_signal(signal.SIGUSR1)
        requests("after", 4)
        after = self.wait_lines(path, 4)
        old = read_lines(path + ".1")
        self.assertEqual([l["path"] for l in old],
                         [f"/before/{i}" for i in range(5)] + [f"/between/{i}" for i in range(3)])
        self.assertEqual([l["path"] for l in after], [f"/after/{i}" for i in range(4)])
        stats = proxy.stats()
        self.assertEqual(stats.get("access_log.dropped", 0), 0)
        self.assertGreaterEqual(stats["access_log.reopens"], 1)

    def test_request_ids_are_generated_forwarded_and_logged(self):
        proxy, backend, path = self.logging_web_proxy("ids.log")
        for _ in range(2):
            code, body, meta, err = self.curl(proxy.port(), "/headers", "a.test", "--http2",
                                              "-H", "x-request-id: forged-by-client")
            self.assertEqual(code, 0, err)
        seen = [headers["x-request-id"] for _, headers in backend.requests]
        lines = self.wait_lines(path, 2)
        self.assertEqual([l["request_id"] for l in lines], seen)
        for request_id in seen:
            self.assertRegex(request_id,
                             r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertNotEqual(seen[0], seen[1])

    def test_a_log_that_cannot_be_opened_is_a_config_error_naming_the_field(self):
        proxy = self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              access_log {{ path: "{self.workdir}/no/such/dir/access.log" }}
              routes {{ hostname: "b.test" backend: "127.0.0.1:1" }} }}""", expect_ready=False)
        self.assertNotEqual(proxy.proc.wait(20), 0)
        self.assertIn("listeners[0].access_log.path: ", proxy.log())
        self.assertIn("No such file or directory", proxy.log())
        result = harness.ctl("validate", "--config", self.write_config("bad.textproto", """
            access_log { format: TEXT text_format: "%NOPE%" path: "-" }
            listeners { address: "127.0.0.1:0" routes { hostname: "b.test" backend: "127.0.0.1:1" } }
        """), check=False)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("access_log.text_format: unknown %NOPE%", result.stdout + result.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
