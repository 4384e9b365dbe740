"""The admin endpoints over TCP (admin { http_address }): /metrics, /healthz, /readyz and
/config_dump over HTTP/1.1 and h2c, read by curl and scraped by a real Prometheus server;
promtool finds the exposition clean; the gRPC API is not served there."""

import json
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from test.integration import harness
from test.integration.l7_harness import L7TestCase


class AdminHttpTest(L7TestCase):
    def start(self):
        backend = self.http1_backend(name="web")
        proxy = self.start_proxy(f"""
            admin {{ http_address: "127.0.0.1:0" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")} }}""")
        match = re.search(r"admin HTTP .* on 127\.0\.0\.1:(\d+)", proxy.log())
        self.assertIsNotNone(match, proxy.log())
        return proxy, int(match.group(1))

    def get(self, port, path, *curl_args):
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\\n%{http_code} %{http_version} %{content_type}",
             *curl_args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
            timeout=20)
        self.assertEqual(result.returncode, 0, result.stderr)
        body, _, meta = result.stdout.rpartition("\n")
        code, version, content_type = meta.split(" ", 2)
        return int(code), version, content_type, body

    def test_endpoints_over_http1_and_h2c(self):
        proxy, port = self.start()
        # A request first, so that the per-route metrics are not all zero.
        code, body, meta, err = self.curl(proxy.port(), "/x", "a.test", "--http2")
        self.assertEqual(code, 0, err)
        for curl_args, version in ((("--http1.1",), "1.1"), (("--http2-prior-knowledge",), "2")):
            code, got_version, content_type, body = self.get(port, "/metrics", *curl_args)
            self.assertEqual((code, got_version), (200, version))
            self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
            self.assertIn('mcproxy_route_responses_total{listener="edge",route="a.test",class="2xx"} 1',
                          body)
            self.assertIn('mcproxy_listener_tls_handshakes_total{listener="edge",version="TLSv1.3"} 1',
                          body)
            self.assertRegex(body, r'mcproxy_route_upstream_connect_duration_seconds_count\{listener="edge",route="a.test"\} 1\n')
            self.assertIn('mcproxy_route_active_requests{listener="edge",route="a.test"} 0', body)
            self.assertEqual(self.get(port, "/healthz", *curl_args)[::3], (200, "ok\n"))
            # First line for probes; then what runs (no database: no hash).
            self.assertEqual(self.get(port, "/readyz", *curl_args)[::3], (200, "ready\nversion 1\n"))
            code, _, content_type, body = self.get(port, "/config_dump", *curl_args)
            self.assertEqual((code, content_type), (200, "application/json"))
            self.assertEqual(json.loads(body)["config"]["listeners"][0]["name"], "edge")
            self.assertNotIn("admin", json.loads(body)["config"])
            self.assertEqual(self.get(port, "/nope", *curl_args)[0], 404)
            self.assertEqual(self.get(port, "/metrics", *curl_args, "-X", "POST")[0], 405)
            # Changes stay behind the Unix socket's permissions.
            self.assertEqual(self.get(port, "/mcproxy.admin.v1.Admin/GetStatus", *curl_args,
                                      "-X", "POST", "-H", "content-type: application/grpc")[0], 404)

        code, _, _, metrics = self.get(port, "/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_healthz_answers_while_a_change_compiles_and_writes(self):
        """Admin changes are compiled and written on a thread of their own: the admin plane (and
        the main loop) answer meanwhile. With 30,000 routes a change the long way (a firewall
        rule: every route compiled again; a route edit is patched, too quick to watch) takes a
        while; /healthz and the gRPC status call keep answering during it."""
        routes = "\n".join(f'  routes {{ hostname: "h{i}.busy.test" backend: "127.0.0.1:9001" }}'
                           for i in range(30000))
        config = self.write_config("busy.textproto",
                                   f'listeners {{ name: "edge" address: "127.0.0.1:0"\n{routes}\n}}\n')
        db = os.path.join(self.workdir, "busy.db")
        harness.ctl("compile", "--config", config, "--db", db)
        socket_path = harness.short_socket_path(self, "admin.sock")
        proxy = self.start_proxy('admin { http_address: "127.0.0.1:0" }', workers=1,
                                 extra_args=("--db", db, "--admin-socket", socket_path),
                                 start_timeout=60)
        port = int(re.search(r"admin HTTP .* on 127\.0\.0\.1:(\d+)", proxy.log()).group(1))
        add = subprocess.Popen([harness.binary("mcproxyctl"), "--socket", socket_path,
                                "firewall", "add", "--ip", "192.0.2.7"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answered_during = 0
        status_during = 0
        deadline = time.monotonic() + 120
        while add.poll() is None and time.monotonic() < deadline:
            if self.get(port, "/healthz")[::3] == (200, "ok\n") and add.poll() is None:
                answered_during += 1
            status = harness.ctl("--socket", socket_path, "status", check=False, timeout=30)
            if status.returncode == 0 and add.poll() is None:
                status_during += 1
        out, err = add.communicate(timeout=60)
        self.assertEqual(add.returncode, 0, out + err)
        self.assertIn("running config version 2", out)
        # The change took long enough to be watched, and the admin plane answered throughout.
        self.assertGreaterEqual(answered_during, 3, proxy.log()[-2000:])
        self.assertGreaterEqual(status_during, 1)
        self.assertIn("(on the change thread)", proxy.log())

    def test_prometheus_scrapes_the_proxy(self):
        if not shutil.which("prometheus"):
            self.fail("prometheus is not installed (tools/setup installs it)")
        proxy, port = self.start()
        web_port = harness.free_port()
        directory = os.path.join(self.workdir, f"prometheus-{time.monotonic_ns()}")
        os.makedirs(directory)
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: mc-proxy
    static_configs:
      - targets: ["127.0.0.1:{port}"]
""")
        server = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def stop():
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
            server.stderr.close()

        self.addCleanup(stop)

        def query(expression):
            url = (f"http://127.0.0.1:{web_port}/api/v1/query?" +
                   urllib.parse.urlencode({"query": expression}))
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    result = json.load(response)["data"]["result"]
            except OSError:
                return None  # not up yet
            return result[0]["value"][1] if result else None

        harness.wait_until(lambda: query('up{job="mc-proxy"}') == "1", timeout=60, interval=0.5,
                           what="Prometheus to scrape mc-proxy successfully")
        self.assertIsNotNone(query("mcproxy_uptime_seconds"))
        self.assertIsNotNone(query('mcproxy_listener_connections_total{listener="edge"}'))


if __name__ == "__main__":
    unittest.main()
