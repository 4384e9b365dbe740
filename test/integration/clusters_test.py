"""Upstream clusters against real backends: load balancing (round robin, least request, ring
hash), active health checks (HTTP, gRPC, TCP, TLS), outlier ejection, connect and request
retries, draining through the admin API, panic mode, and endpoints given by name."""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest
from concurrent import futures

import grpc

import harness
import l7_harness


def h2load(port, *args, timeout=60):
    """Runs h2load against a.test on the proxy; returns (succeeded, failed, output)."""
    result = subprocess.run(["h2load", f"--connect-to=127.0.0.1:{port}", *args,
                             f"https://a.test:{port}/small.html"],
                            capture_output=True, text=True, timeout=timeout)
    match = re.search(r"(\d+) succeeded, (\d+) failed", result.stdout)
    if not match:
        raise AssertionError("h2load printed no result:\n" + result.stdout + result.stderr)
    return int(match.group(1)), int(match.group(2)), result.stdout


class DelayedHttpBackend:
    """An HTTP/1.1 backend answering "name" after `delay` seconds, with the status `status`
    (changeable while it runs)."""

    def __init__(self, name, delay=0.0, status=200):
        import http.server
        backend = self
        self.name = name
        self.delay = delay
        self.status = status

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.do_GET()

            def do_DELETE(self):
                self.do_GET()

            def do_GET(self):
                time.sleep(backend.delay)
                body = f"backend={backend.name}\n".encode()
                self.send_response(backend.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # The proxy drops a connection whose answer it retries elsewhere: not an error here.
        self.server.handle_error = lambda request, address: None
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HealthGrpcBackend:
    """A gRPC server (grpcio, h2c) with grpc.health.v1.Health/Check for the service "echo":
    SERVING or NOT_SERVING as `serving` says. Other service names are NOT_FOUND."""

    def __init__(self):
        self.serving = True
        self.checks = 0

        def check(request, context):
            self.checks += 1
            if request != b"\x0a\x04echo":  # HealthCheckRequest{service: "echo"}
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return b"\x08\x01" if self.serving else b"\x08\x02"

        handlers = {"Check": grpc.unary_unary_rpc_method_handler(check, l7_harness.identity,
                                                                 l7_harness.identity)}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc.health.v1.Health", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def close(self):
        self.server.stop(0)


class ClustersTest(l7_harness.L7TestCase):
    def setUp(self):
        self.socket = harness.short_socket_path(self, "admin.sock")

    def start_cluster_proxy(self, clusters, routes, db=False, workers=2):
        """A proxy with `clusters` and an L7 listener "web" with `routes` (a.test's route
        included), an admin socket, and (db) a snapshot database."""
        extra = ()
        if db:
            extra = ("--db", os.path.join(self.workdir, f"clusters-{time.monotonic_ns()}.db"))
        return self.start_proxy(f"""
            admin {{ socket: "{self.socket}" http_address: "127.0.0.1:0" }}
            {clusters}
            listeners {{ name: "web" address: "127.0.0.1:0" {routes} }}""",
                                workers=workers, extra_args=extra)

    def a_route(self, cluster="api", extra=""):
        return (f'routes {{ hostname: "a.test" mode: L7 cluster: "{cluster}" {extra} '
                f'tls_cert: "{self.cert_a[0]}" tls_key: "{self.cert_a[1]}" }}')

    def clusters(self, name=None):
        args = ["--socket", self.socket, "clusters", "list", "--json"]
        if name:
            args += ["--cluster", name]
        return json.loads(harness.ctl(*args).stdout).get("clusters", [])

    def endpoints(self, name="api"):
        """address -> the endpoint's status, numbers as ints."""
        out = {}
        for endpoint in self.clusters(name)[0]["endpoints"]:
            for key in ("active", "connections", "requests", "failures", "ejections", "weight"):
                endpoint[key] = int(endpoint.get(key, 0))
            endpoint.setdefault("healthy", False)
            endpoint.setdefault("ejected", False)
            out[endpoint["address"]] = endpoint
        return out

    def who(self, port, source=None):
        code, body, meta, err = self.curl(port, "/", "a.test", source=source)
        self.assertEqual(code, 0, err)
        return meta.split()[0], body.decode().strip()

    def http1_cluster(self, backends, policy="ROUND_ROBIN", extra=""):
        endpoints = " ".join(f'endpoints {{ address: "{b.address}" }}' for b in backends)
        return (f'clusters {{ name: "api" lb_policy: {policy} backend_protocol: HTTP1 '
                f'{endpoints} {extra} }}')

    def named_backends(self, count, **kwargs):
        backends = [DelayedHttpBackend(f"b{i}", **kwargs) for i in range(count)]
        for backend in backends:
            self.addCleanup(backend.close)
        return backends

    # --- load balancing -----------------------------------------------------------------

    def test_round_robin_spreads_requests_over_three_endpoints_within_ten_percent(self):
        backends = self.named_backends(3)
        proxy = self.start_cluster_proxy(self.http1_cluster(backends), self.a_route())
        succeeded, failed, out = h2load(proxy.port(), "-n", "600", "-c", "4", "-m", "4")
        self.assertEqual((succeeded, failed), (600, 0), out)
        counts = {address: e["requests"] for address, e in self.endpoints().items()}
        self.assertEqual(sum(counts.values()), 600, counts)
        for address, count in counts.items():
            self.assertLessEqual(abs(count - 200), 20, counts)
        # Exported per endpoint, with the cluster and endpoint as labels.
        admin_port = re.search(r"admin HTTP .* on 127\.0\.0\.1:(\d+)", proxy.log()).group(1)
        metrics = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{admin_port}/metrics"],
                                 capture_output=True, text=True, timeout=20).stdout
        for backend in backends:
            self.assertIn(f'mcproxy_cluster_endpoint_requests_total{{cluster="api",endpoint='
                          f'"{backend.address}"}} {counts[backend.address]}', metrics)
            self.assertIn(f'mcproxy_cluster_endpoint_healthy{{cluster="api",endpoint='
                          f'"{backend.address}"}} 1', metrics)
        self.assertIn('mcproxy_cluster_retries_total{cluster="api"} 0', metrics)

    def test_least_request_prefers_the_idle_endpoint(self):
        slow, fast = DelayedHttpBackend("slow", delay=1.0), DelayedHttpBackend("fast")
        self.addCleanup(slow.close)
        self.addCleanup(fast.close)
        proxy = self.start_cluster_proxy(self.http1_cluster([slow, fast], "LEAST_REQUEST"),
                                         self.a_route())
        succeeded, failed, out = h2load(proxy.port(), "-n", "200", "-c", "4", "-m", "2")
        self.assertEqual((succeeded, failed), (200, 0), out)
        counts = {address: e["requests"] for address, e in self.endpoints().items()}
        # Round robin would send it 100. Least request sends a request to the slow one only
        # when it is no busier than the fast one.
        self.assertLess(counts[slow.address], 20, counts)
        self.assertGreater(counts[fast.address], 180, counts)

    def test_ring_hash_keeps_each_client_on_one_endpoint_and_moves_only_the_drained_ones(self):
        backends = self.named_backends(3)
        proxy = self.start_cluster_proxy(self.http1_cluster(backends, "RING_HASH"),
                                         self.a_route(), db=True)
        port = proxy.port()
        sources = [f"127.0.0.{i}" for i in range(10, 40)]
        placed = {}
        for source in sources:
            first = self.who(port, source)
            self.assertEqual(first[0], "200")
            self.assertEqual(self.who(port, source), first, source)  # sticky
            placed[source] = first[1]
        self.assertEqual(len(set(placed.values())), 3, placed)  # all three are used
        drained = backends[0]
        result = harness.ctl("--socket", self.socket, "clusters", "drain", "--cluster", "api",
                             "--endpoint", drained.address)
        self.assertIn("ok: running config version 2", result.stdout)
        for source in sources:
            now = self.who(port, source)[1]
            if placed[source] == f"backend={drained.name}":
                self.assertNotEqual(now, placed[source], source)
            else:
                self.assertEqual(now, placed[source], source)  # nobody else moves

    # --- health, ejection, retries ----------------------------------------------------

    def test_kill_nine_under_load_fails_only_requests_in_flight_and_health_brings_it_back(self):
        servers = [self.nghttpd() for _ in range(3)]
        endpoints = " ".join(f'endpoints {{ address: "{s.address}" }}' for s in servers)
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "api" {endpoints}
              health_check {{ interval_ms: 200 timeout_ms: 500 unhealthy_threshold: 2
                             healthy_threshold: 2 http {{ path: "/small.html" }} }}
              outlier_detection {{ consecutive_failures: 3 base_ejection_ms: 1000 }} }}""",
                                         self.a_route())
        port = proxy.port()
        victim = servers[1]
        load = subprocess.Popen(["h2load", f"--connect-to=127.0.0.1:{port}", "-c", "8", "-m", "1",
                                 "-D", "3", f"https://a.test:{port}/small.html"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        victim.proc.kill()  # SIGKILL: no FIN for requests in flight, no goodbye
        victim.proc.wait(5)
        out = load.communicate(timeout=30)[0]
        match = re.search(r"(\d+) succeeded, (\d+) failed", out)
        self.assertIsNotNone(match, out)
        succeeded, failed = int(match.group(1)), int(match.group(2))
        self.assertGreater(succeeded, 100, out)
        self.assertLessEqual(failed, 8, out)  # at most the 8 in flight at the kill

        harness.wait_until(lambda: not self.endpoints()[victim.address]["healthy"], timeout=5,
                           what="the killed endpoint to be marked unhealthy")
        before = self.endpoints()[victim.address]["requests"]
        succeeded, failed, out = h2load(port, "-n", "300", "-c", "4")
        self.assertEqual((succeeded, failed), (300, 0), out)  # none after detection
        self.assertEqual(self.endpoints()[victim.address]["requests"], before)

        revived = self.nghttpd(port=victim.port)
        harness.wait_until(lambda: self.endpoints()[revived.address]["healthy"], timeout=5,
                           what="the restarted endpoint to pass its checks again")
        succeeded, failed, out = h2load(port, "-n", "300", "-c", "4")
        self.assertEqual((succeeded, failed), (300, 0), out)
        self.assertGreater(self.endpoints()[victim.address]["requests"], before + 50)
        self.assertIn(f"endpoint {victim.address} is unhealthy", proxy.log())
        self.assertIn(f"endpoint {victim.address} is healthy", proxy.log())

    def test_a_refused_connect_is_retried_on_another_endpoint_and_ejects_after_five(self):
        live = self.named_backends(2)
        dead = f"127.0.0.1:{harness.free_port()}"  # nothing listens
        endpoints = " ".join(f'endpoints {{ address: "{a}" }}'
                             for a in (live[0].address, dead, live[1].address))
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "api" backend_protocol: HTTP1 {endpoints}
              outlier_detection {{ consecutive_failures: 5 base_ejection_ms: 60000 }} }}""",
                                         self.a_route(), workers=1)
        port = proxy.port()
        for _ in range(30):
            self.assertEqual(self.who(port)[0], "200")
        status = self.endpoints()
        self.assertEqual(status[dead]["failures"], 5)  # then ejected: no more attempts
        self.assertTrue(status[dead]["ejected"])
        self.assertEqual(status[dead]["ejections"], 1)
        self.assertEqual(int(self.clusters("api")[0]["retries"]), 5)
        listing = harness.ctl("--socket", self.socket, "clusters", "list").stdout
        self.assertRegex(listing, re.escape(dead) + r"\s+ejected")

    def test_a_503_is_retried_for_idempotent_requests_within_the_budget(self):
        failing, good = DelayedHttpBackend("failing", status=503), DelayedHttpBackend("good")
        self.addCleanup(failing.close)
        self.addCleanup(good.close)
        proxy = self.start_cluster_proxy(self.http1_cluster([failing, good]), self.a_route(),
                                         workers=1)
        port = proxy.port()
        for _ in range(10):
            self.assertEqual(self.who(port), ("200", "backend=good"))
        status = self.endpoints()
        self.assertEqual(status[good.address]["requests"], 10)
        self.assertGreaterEqual(status[failing.address]["failures"], 5)
        self.assertEqual(status[failing.address]["failures"], status[failing.address]["requests"])
        # POST is not idempotent: its 503 reaches the client.
        answers = set()
        for _ in range(4):
            code, body, meta, err = self.curl(port, "/", "a.test", "-X", "POST", "-d", "x")
            answers.add(meta.split()[0])
        self.assertEqual(answers, {"200", "503"})

    def test_a_reset_before_the_answer_is_retried_elsewhere(self):
        good = self.named_backends(1)[0]

        def reset_after_request(conn):
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST, no answer

        resetting = self.threaded_raw_backend(reset_after_request)
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "api" backend_protocol: HTTP1 max_request_attempts: 2
                        endpoints {{ address: "{resetting}" }}
                        endpoints {{ address: "{good.address}" }} }}""", self.a_route(),
                                         workers=1)
        port = proxy.port()
        for _ in range(6):
            self.assertEqual(self.who(port), ("200", "backend=b0"))
        status = self.endpoints()
        self.assertGreaterEqual(status[resetting]["failures"], 3)
        self.assertEqual(status[good.address]["requests"], 6)
        # DELETE is idempotent too; POST is not, and its reset is the client's 502.
        code, body, meta, err = self.curl(port, "/", "a.test", "-X", "DELETE")
        self.assertEqual(meta.split()[0], "200")
        answers = set()
        for _ in range(4):
            code, body, meta, err = self.curl(port, "/", "a.test", "-X", "POST", "-d", "x")
            answers.add(meta.split()[0])
        self.assertEqual(answers, {"200", "502"})

    def test_all_endpoints_down_is_503_with_a_clear_body(self):
        dead = [f"127.0.0.1:{harness.free_port()}" for _ in range(3)]
        endpoints = " ".join(f'endpoints {{ address: "{a}" }}' for a in dead)
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "api" {endpoints}
              health_check {{ interval_ms: 100 tcp {{}} }} }}""", self.a_route())
        port = proxy.port()
        harness.wait_until(
            lambda: not any(e["healthy"] for e in self.endpoints().values()), timeout=5,
            what="every endpoint unhealthy")
        code, body, meta, err = self.curl(port, "/x", "a.test")
        self.assertEqual(meta.split()[0], "503", body)
        self.assertRegex(body.decode(), r'cluster "api": no endpoint could be reached \(3 tried\)')
        self.assertGreaterEqual(int(self.clusters("api")[0]["panic"]), 1)  # spread over all

    def test_drained_everywhere_is_503_and_drain_requires_the_database(self):
        backend = self.named_backends(1)[0]
        proxy = self.start_cluster_proxy(
            f'clusters {{ name: "api" backend_protocol: HTTP1 '
            f'endpoints {{ address: "{backend.address}" weight: 0 }} }}', self.a_route())
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test")
        self.assertEqual(meta.split()[0], "503")
        self.assertIn(b'cluster "api": every endpoint is drained', body)
        refused = harness.ctl("--socket", self.socket, "clusters", "drain", "--cluster", "api",
                              "--endpoint", backend.address, check=False)
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn("without --db", refused.stderr)

    def test_draining_through_the_api_loses_no_request(self):
        servers = [self.nghttpd() for _ in range(3)]
        endpoints = " ".join(f'endpoints {{ address: "{s.address}" }}' for s in servers)
        proxy = self.start_cluster_proxy(f'clusters {{ name: "api" {endpoints} }}',
                                         self.a_route(), db=True)
        port = proxy.port()
        drained = servers[2].address
        load = subprocess.Popen(["h2load", f"--connect-to=127.0.0.1:{port}", "-c", "6", "-m", "4",
                                 "-D", "3", f"https://a.test:{port}/small.html"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        result = harness.ctl("--socket", self.socket, "clusters", "drain", "--cluster", "api",
                             "--endpoint", drained)
        self.assertIn("ok: running config version 2", result.stdout)
        self.assertEqual(self.endpoints()[drained]["weight"], 0)
        time.sleep(0.2)  # requests picked just before the change have reached it
        before = self.endpoints()[drained]["requests"]
        self.assertGreater(before, 0)
        out = load.communicate(timeout=30)[0]
        match = re.search(r"(\d+) succeeded, (\d+) failed", out)
        self.assertIsNotNone(match, out)
        self.assertGreater(int(match.group(1)), 100, out)
        self.assertEqual(int(match.group(2)), 0, out)
        # No new request reached it once the change was running, not even on the client
        # connections opened before it (they still run the older snapshot).
        self.assertEqual(self.endpoints()[drained]["requests"], before)
        after = before
        succeeded, failed, out = h2load(port, "-n", "200", "-c", "2")
        self.assertEqual((succeeded, failed), (200, 0), out)
        self.assertEqual(self.endpoints()[drained]["requests"], after)
        # In the history, like any change, and undone the same way.
        history = json.loads(harness.ctl("--socket", self.socket, "snapshots", "list",
                                         "--json").stdout)
        self.assertIn(f"api: drain api {drained}",
                      [s["source"] for s in history["snapshots"]])
        harness.ctl("--socket", self.socket, "clusters", "set-weight", "--cluster", "api",
                    "--endpoint", drained, "--weight", "2")
        self.assertEqual(self.endpoints()[drained]["weight"], 2)
        bad = harness.ctl("--socket", self.socket, "clusters", "drain", "--cluster", "api",
                          "--endpoint", "127.0.0.1:1", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn('has no endpoint "127.0.0.1:1"', bad.stderr)
        # A route added through the API can name the cluster; one naming no cluster is refused
        # with the field.
        harness.ctl("--socket", self.socket, "routes", "add", "--listener", "web", "--hostname",
                    "b.test", "--cluster", "api", "--mode", "l7", "--tls-cert", self.cert_b[0],
                    "--tls-key", self.cert_b[1])
        code, body, meta, err = self.curl(port, "/small.html", "b.test")
        self.assertEqual(meta.split()[0], "200", err)
        listed = harness.ctl("--socket", self.socket, "routes", "list").stdout
        self.assertRegex(listed, r"b\.test\s+cluster api\s+l7")
        bad = harness.ctl("--socket", self.socket, "routes", "add", "--listener", "web",
                          "--hostname", "c.test", "--cluster", "nope", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn('listeners[0].routes[2].cluster: no cluster is named "nope"', bad.stderr)

    def test_grpc_health_check_follows_serving_and_not_serving(self):
        grpc_backend, spare = HealthGrpcBackend(), self.nghttpd()
        self.addCleanup(grpc_backend.close)
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "api" endpoints {{ address: "{grpc_backend.address}" }}
              health_check {{ interval_ms: 100 unhealthy_threshold: 1 healthy_threshold: 1
                             grpc {{ service: "echo" }} }} }}
            clusters {{ name: "other" endpoints {{ address: "{spare.address}" }} }}""",
                                         self.a_route())
        harness.wait_until(lambda: grpc_backend.checks >= 2, what="gRPC health checks")
        self.assertTrue(self.endpoints()[grpc_backend.address]["healthy"])
        grpc_backend.serving = False
        harness.wait_until(lambda: not self.endpoints()[grpc_backend.address]["healthy"],
                           what="NOT_SERVING to mark it unhealthy")
        self.assertEqual(self.endpoints()[grpc_backend.address]["last_check_failure"],
                         "not SERVING")
        grpc_backend.serving = True
        harness.wait_until(lambda: self.endpoints()[grpc_backend.address]["healthy"],
                           what="SERVING to mark it healthy")
        # One process checks, however many workers there are.
        checks_before = grpc_backend.checks
        time.sleep(1.0)
        self.assertLessEqual(grpc_backend.checks - checks_before, 12)
        self.assertEqual(self.endpoints("other")[spare.address]["healthy"], True)  # no checks

    # --- L4 ------------------------------------------------------------------------------

    def test_l4_cluster_connects_elsewhere_and_tls_checks_the_endpoints(self):
        live = [self.echo_backend(self.cert_a) for _ in range(2)]
        dead = f"127.0.0.1:{harness.free_port()}"
        proxy = self.start_cluster_proxy(f"""
            clusters {{ name: "tls" endpoints {{ address: "{live[0].address}" }}
                                    endpoints {{ address: "{dead}" }}
                                    endpoints {{ address: "{live[1].address}" }}
              max_connect_attempts: 3
              health_check {{ interval_ms: 200 tls {{}} }} backend_tls_ca: "{self.certs.ca_cert}" }}""",
                                         'routes { hostname: "a.test" cluster: "tls" }')
        port = proxy.port()
        ctx = self.certs.client_context()
        for _ in range(12):
            with harness.tls_connect(port, "a.test", ctx) as tls:
                tls.sendall(b"ping")
                self.assertEqual(tls.recv(4), b"ping")
        status = self.endpoints("tls")
        self.assertEqual(status[live[0].address]["connections"] +
                         status[live[1].address]["connections"], 12)
        harness.wait_until(lambda: not self.endpoints("tls")[dead]["healthy"],
                           what="the dead endpoint's TLS check to fail")
        self.assertIn("connect", self.endpoints("tls")[dead]["last_check_failure"])
        self.assertTrue(self.endpoints("tls")[live[0].address]["healthy"])
        self.assertEqual(proxy.stats().get("listener.web.close.upstream_connect_failed", 0), 0)

    # --- names ---------------------------------------------------------------------------

    def test_an_endpoint_given_by_name_is_resolved_again(self):
        if shutil.which("unshare") is None or subprocess.run(
                ["unshare", "-m", "true"], capture_output=True).returncode != 0:
            self.skipTest("needs a mount namespace (unshare -m) to give the proxy its own "
                          "/etc/hosts")
        first, second = self.named_backends(2)
        hosts = os.path.join(self.workdir, f"hosts-{time.monotonic_ns()}")

        def write_hosts(address):
            # In place: the bind mount follows the file (its inode), not the name.
            with open(hosts, "w") as f:
                f.write(f"127.0.0.1 localhost\n{address} api.mc-test\n")

        write_hosts("127.0.0.1")
        first_port = first.address.rsplit(":", 1)[1]
        # second listens on another port; a name resolves only addresses, so a forwarder on
        # 127.0.0.2:first_port stands in for "the same name, another machine".
        relay = socket.create_server(("127.0.0.2", int(first_port)))
        self.addCleanup(relay.close)

        def forward(conn):
            second_port = int(second.address.rsplit(":", 1)[1])
            harness.relay_both_ways(conn, socket.create_connection(("127.0.0.1", second_port)))

        harness.accept_in_threads(relay, forward)
        config = f"""
            admin {{ socket: "{self.socket}" }}
            clusters {{ name: "api" backend_protocol: HTTP1 dns_refresh_ms: 200
                        endpoints {{ address: "api.mc-test:{first_port}" }} }}
            listeners {{ name: "web" address: "127.0.0.1:0" {self.a_route()} }}"""
        proxy = self.start_proxy(config, command_prefix=(
            "unshare", "-m", "sh", "-c", f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"))
        port = proxy.port()
        self.assertEqual(self.who(port), ("200", "backend=b0"))
        write_hosts("127.0.0.2")
        harness.wait_until(lambda: self.who(port) == ("200", "backend=b1"), timeout=5,
                           what="the new address to be used")
        self.assertIn("api.mc-test:" + first_port + " now resolves to 127.0.0.2", proxy.log())
        self.assertEqual(self.endpoints()[f"api.mc-test:{first_port}"]["resolved_address"],
                         f"127.0.0.2:{first_port}")


if __name__ == "__main__":
    unittest.main()
