"""The admin plane through the real binary: gRPC on the Unix socket (a stock grpcio client with
stubs generated from api/mcproxy/admin/v1/admin.proto), the HTTP endpoints, and SO_PEERCRED."""

import json
import re
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import unittest

import tempfile

import grpc

from test.integration import harness


def load_stubs(workdir):
    """Generates the Python stubs from the same .proto files the proxy is built from: messages
    with the system protoc (Debian's grpc_tools bundles a protoc too old for proto3 `optional`),
    the service stub with grpc_tools from a copy without `optional` (the stub only names the
    message classes, which come from the first)."""
    from grpc_tools import protoc
    out = os.path.join(workdir, "stubs")
    os.makedirs(out, exist_ok=True)
    root = os.path.join(os.environ["TEST_SRCDIR"], "mcproxy")
    protos = ["api/mcproxy/type/v1/header.proto", "api/mcproxy/config/v1/bootstrap.proto",
              "api/mcproxy/fleet/v1/fleet.proto", "api/mcproxy/admin/v1/admin.proto"]
    subprocess.run(["protoc", f"-I{root}", "-I/usr/include", f"--python_out={out}", *protos],
                   check=True)
    stripped = os.path.join(workdir, "stripped-protos")
    for proto in protos:
        os.makedirs(os.path.dirname(os.path.join(stripped, proto)), exist_ok=True)
        with open(os.path.join(root, proto)) as f:
            text = re.sub(r"^(\s*)optional ", r"\1", f.read(), flags=re.M)
        with open(os.path.join(stripped, proto), "w") as f:
            f.write(text)
    grpc_out = os.path.join(workdir, "grpc-stubs")
    os.makedirs(grpc_out, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{stripped}", "-I/usr/include", f"--python_out={grpc_out}",
                      f"--grpc_python_out={grpc_out}", *protos])
    assert rc == 0, "protoc failed"
    shutil.copy(os.path.join(grpc_out, "api/mcproxy/admin/v1/admin_pb2_grpc.py"),
                os.path.join(out, "api/mcproxy/admin/v1/admin_pb2_grpc.py"))
    sys.path.insert(0, out)
    from api.mcproxy.admin.v1 import admin_pb2, admin_pb2_grpc
    from api.mcproxy.config.v1 import bootstrap_pb2
    return admin_pb2, admin_pb2_grpc, bootstrap_pb2


def served_certificate(port):
    """The certificate (DER) the proxy presents for a.test right now."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with harness.tls_connect(port, "a.test", ctx) as tls:
        return tls.getpeercert(binary_form=True)


class AdminTest(harness.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pb, cls.pb_grpc, cls.config_pb = load_stubs(cls.workdir)

    def setUp(self):
        self.backend_a = self.echo_backend(self.cert_a)
        self.backend_b = self.echo_backend(self.cert_b)
        self.db = os.path.join(self.workdir, f"admin-{time.monotonic_ns()}.db")
        self.socket = harness.short_socket_path(self, "admin.sock")
        self.proxy = self.start_admin_proxy()

    def start_admin_proxy(self, extra_admin=""):
        return self.start_proxy(f"""
            admin {{ socket: "{self.socket}" {extra_admin} }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{self.backend_a.address}" }} }}""",
                                extra_args=("--db", self.db))

    def stub(self):
        # A pool of its own: grpc-python would otherwise reuse a connection to an earlier
        # process on the same socket path.
        channel = grpc.insecure_channel(f"unix://{self.socket}",
                                        options=(("grpc.use_local_subchannel_pool", 1),))
        self.addCleanup(channel.close)
        return self.pb_grpc.AdminStub(channel)

    def reaches(self, name, source=None):
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        try:
            with harness.tls_connect(self.proxy.port(), name, ctx, source=source) as tls:
                tls.sendall(b"ping")
                return tls.recv(4) == b"ping"
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return False

    def route(self, hostname, backend, **fields):
        return self.config_pb.Route(hostname=hostname, backend=backend, **fields)

    def versions(self):
        listing = harness.ctl("snapshots", "list", "--db", self.db, "--json")
        return json.loads(listing.stdout)

    def test_socket_is_private(self):
        mode = stat.S_IMODE(os.stat(self.socket).st_mode)
        self.assertEqual(mode, 0o600)

    def test_routes_are_added_and_removed_through_the_database(self):
        admin = self.stub()
        self.assertFalse(self.reaches("b.test"))
        reply = admin.AddRoute(self.pb.AddRouteRequest(
            listener="edge", route=self.route("b.test", self.backend_b.address)))
        self.assertTrue(reply.changed)
        self.assertTrue(self.reaches("b.test"))  # published before the call returned
        routes = admin.ListRoutes(self.pb.ListRoutesRequest()).routes
        self.assertEqual(sorted(r.route.hostname for r in routes), ["a.test", "b.test"])
        newest = self.versions()[0]
        self.assertEqual(newest["version"], reply.snapshot_version)
        self.assertIn("api: add route b.test", newest["source"])
        removed = admin.RemoveRoute(self.pb.RemoveRouteRequest(listener="127.0.0.1:0", hostname="B.TEST"))
        self.assertEqual(removed.snapshot_version, reply.snapshot_version + 1)
        self.assertFalse(self.reaches("b.test"))

    def rows(self):
        return int(subprocess.run(["sqlite3", self.db, "SELECT count(*) FROM routes"],
                                  capture_output=True, text=True, check=True).stdout)

    def test_route_edits_patch_what_runs_and_store_one_row(self):
        """An API add or remove is made to the running snapshot's bytes, compiled by patching it
        and stored as one route row: nothing else is read, compiled or written again. A version
        another writer stored first is built on (the long way), and edits patch again after."""
        admin = self.stub()
        before = self.rows()
        admin.AddRoute(self.pb.AddRouteRequest(
            listener="edge", route=self.route("B.test", self.backend_b.address)))
        self.assertRegex(self.proxy.log(), r"config version 2 \(api: add route B.test\) is "
                         r"running: version 1's bytes edited in [0-9.]+ ms, its snapshot patched")
        self.assertNotIn("made the long way", self.proxy.log())
        self.assertEqual(self.rows(), before + 1)
        self.assertTrue(self.reaches("b.test"))
        # Another writer stores version 3; an add made before the proxy runs it builds on it.
        other = self.write_config("other.textproto", f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{self.backend_a.address}" }}
              routes {{ hostname: "b.test" backend: "{self.backend_b.address}" }}
              routes {{ hostname: "z.test" backend: "{self.backend_b.address}" }} }}""")
        harness.ctl("compile", "--config", other, "--db", self.db)
        reply = admin.AddRoute(self.pb.AddRouteRequest(
            listener="edge", route=self.route("c.test", self.backend_b.address)))
        self.assertEqual(reply.snapshot_version, 4)
        deadline = time.monotonic() + 10
        while "config version 3" not in self.proxy.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        admin.RemoveRoute(self.pb.RemoveRouteRequest(listener="edge", hostname="a.test"))
        self.assertRegex(self.proxy.log(), r"config version 5 \(api: remove route a.test\) is "
                         r"running: version 4's bytes edited")
        running = {r.route.hostname for r in admin.ListRoutes(self.pb.ListRoutesRequest()).routes}
        self.assertEqual(running, {"b.test", "c.test", "z.test"})
        self.assertFalse(self.reaches("a.test"))
        self.assertTrue(self.reaches("z.test") and self.reaches("c.test"))
        verify = harness.ctl("snapshots", "verify", "--db", self.db)
        self.assertIn("5 version(s)", verify.stdout + verify.stderr)
        # What was patched is what a start compiles from the database.
        self.assertEqual(self.proxy.terminate(), 0)
        self.proxy = self.start_admin_proxy()
        running = {r.route.hostname for r in self.stub().ListRoutes(self.pb.ListRoutesRequest()).routes}
        self.assertEqual(running, {"b.test", "c.test", "z.test"})
        self.assertTrue(self.reaches("c.test"))

    def test_bad_changes_are_refused_and_change_nothing(self):
        admin = self.stub()
        before = self.versions()
        with self.assertRaises(grpc.RpcError) as bad:
            admin.AddRoute(self.pb.AddRouteRequest(
                listener="edge", route=self.route("c.test", "127.0.0.1:99999")))
        self.assertEqual(bad.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("listeners[0].routes[1].backend: port must be a number", bad.exception.details())
        with self.assertRaises(grpc.RpcError) as dup:
            admin.AddRoute(self.pb.AddRouteRequest(
                listener="edge", route=self.route("A.test", self.backend_b.address)))
        self.assertEqual(dup.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        with self.assertRaises(grpc.RpcError) as missing:
            admin.RemoveRoute(self.pb.RemoveRouteRequest(listener="edge", hostname="nope.test"))
        self.assertEqual(missing.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as no_listener:
            admin.AddRoute(self.pb.AddRouteRequest(
                listener="127.9.9.9:1", route=self.route("d.test", self.backend_b.address)))
        self.assertEqual(no_listener.exception.code(), grpc.StatusCode.NOT_FOUND)
        # Over the 4 MiB request limit: RESOURCE_EXHAUSTED (clients do not retry it), not a
        # reset that says "try again".
        with self.assertRaises(grpc.RpcError) as huge:
            admin.AddRoute(self.pb.AddRouteRequest(
                listener="edge", route=self.route("e" * (5 << 20), self.backend_b.address)))
        self.assertEqual(huge.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         huge.exception.details())
        self.assertIn("larger than the admin API's limit", huge.exception.details())
        self.assertEqual(self.versions(), before)
        self.assertTrue(self.reaches("a.test"))

    def test_firewall_rules_and_status(self):
        admin = self.stub()
        self.assertTrue(self.reaches("a.test", source="127.0.0.40"))
        admin.AddFirewallRule(self.pb.FirewallRuleRequest(rule=self.pb.FirewallRule(ip="127.0.0.40")))
        self.assertFalse(self.reaches("a.test", source="127.0.0.40"))
        self.assertTrue(self.reaches("a.test", source="127.0.0.41"))
        admin.AddFirewallRule(self.pb.FirewallRuleRequest(
            rule=self.pb.FirewallRule(listener="edge", cidr="127.0.1.0/24")))
        rules = admin.ListFirewallRules(self.pb.ListFirewallRulesRequest()).rules
        self.assertEqual(len(rules), 2)
        admin.RemoveFirewallRule(self.pb.FirewallRuleRequest(rule=self.pb.FirewallRule(ip="127.0.0.40")))
        self.assertTrue(self.reaches("a.test", source="127.0.0.40"))
        with self.assertRaises(grpc.RpcError) as missing:
            admin.RemoveFirewallRule(self.pb.FirewallRuleRequest(rule=self.pb.FirewallRule(country="NL")))
        self.assertEqual(missing.exception.code(), grpc.StatusCode.NOT_FOUND)
        status = admin.GetStatus(self.pb.GetStatusRequest())
        self.assertRegex(status.version, r"^mc-proxy \d")
        self.assertEqual(status.snapshot_version, self.versions()[0]["version"])
        self.assertEqual(status.listeners[0].name, "edge")
        self.assertGreaterEqual(status.listeners[0].total_connections, 4)
        history = admin.ListSnapshots(self.pb.ListSnapshotsRequest()).snapshots
        rolled = admin.Rollback(self.pb.RollbackRequest(version=1))
        self.assertEqual(rolled.snapshot_version, history[0].version + 1)
        self.assertEqual(list(admin.ListFirewallRules(self.pb.ListFirewallRulesRequest()).rules), [])

    def test_hundred_concurrent_clients_lose_nothing_and_survive_a_restart(self):
        errors = []

        def client(i):
            try:
                channel = grpc.insecure_channel(f"unix://{self.socket}")
                admin = self.pb_grpc.AdminStub(channel)
                admin.AddRoute(self.pb.AddRouteRequest(
                    listener="edge", route=self.route(f"h{i}.test", self.backend_b.address)),
                    timeout=60)
                if i % 2:
                    admin.RemoveRoute(self.pb.RemoveRouteRequest(listener="edge",
                                                                 hostname=f"h{i}.test"), timeout=60)
                channel.close()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual(errors, [])
        expected = {"a.test"} | {f"h{i}.test" for i in range(0, 100, 2)}
        running = {r.route.hostname for r in self.stub().ListRoutes(self.pb.ListRoutesRequest()).routes}
        self.assertEqual(running, expected)
        # The newest version's routes: the rows no version closed (versions share rows).
        stored = subprocess.run(["sqlite3", self.db, "SELECT hostname FROM routes WHERE "
                                 "until_version IS NULL"],
                                capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(set(stored), expected)
        self.assertTrue(self.reaches("h42.test"))
        # A restart runs what the API wrote.
        self.assertEqual(self.proxy.terminate(), 0)
        self.proxy = self.start_admin_proxy()
        running = {r.route.hostname for r in self.stub().ListRoutes(self.pb.ListRoutesRequest()).routes}
        self.assertEqual(running, expected)

    def test_mcproxyctl_scripting_contract(self):
        def ctl(*args):
            return harness.ctl("--socket", self.socket, *args, check=False)

        added = ctl("routes", "add", "--listener", "127.0.0.1:0", "--hostname", "b.test",
                    "--backend", self.backend_b.address, "--mode", "l4")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertTrue(self.reaches("b.test"))
        listed = json.loads(ctl("routes", "list", "--json").stdout)
        self.assertEqual(sorted(r["route"]["hostname"] for r in listed["routes"]), ["a.test", "b.test"])
        bad = ctl("routes", "add", "--listener", "edge", "--hostname", "c.test", "--backend",
                  "127.0.0.1:99999", "--mode", "l4")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("listeners[0].routes[2].backend: port must be a number", bad.stderr)
        self.assertEqual(ctl("routes", "remove", "--listener", "edge", "--hostname", "x.test").returncode, 1)
        self.assertEqual(ctl("firewall", "add", "--ip", "127.0.0.44").returncode, 0)
        self.assertFalse(self.reaches("a.test", source="127.0.0.44"))
        self.assertIn("127.0.0.44", ctl("firewall", "list").stdout)
        self.assertEqual(ctl("firewall", "remove", "--ip", "127.0.0.44").returncode, 0)
        self.assertEqual(ctl("routes", "remove", "--listener", "edge", "--hostname", "b.test").returncode, 0)
        self.assertFalse(self.reaches("b.test"))
        status = json.loads(ctl("status", "--json").stdout)
        self.assertEqual(status["listeners"][0]["name"], "edge")
        self.assertEqual(ctl("routes", "add", "--listener", "edge").returncode, 2)  # usage
        unreachable = harness.ctl("--socket", self.socket + ".missing", "status", check=False)
        self.assertEqual(unreachable.returncode, 3)

    def http(self, path):
        result = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--unix-socket", self.socket,
                                 "-w", "\n%{http_code}", f"http://admin{path}"],
                                capture_output=True, text=True, timeout=20)
        body, _, code = result.stdout.rpartition("\n")
        return int(code), body

    def test_operational_endpoints(self):
        from prometheus_client.parser import text_string_to_metric_families
        self.assertEqual(self.http("/healthz"), (200, "ok\n"))
        self.assertEqual(self.http("/readyz")[0], 200)
        code, dump = self.http("/config_dump")
        self.assertEqual(code, 200)
        config = json.loads(dump)
        self.assertEqual(config["config"]["listeners"][0]["routes"][0]["hostname"], "a.test")

        def metric(text, family, **labels):
            for parsed in text_string_to_metric_families(text):  # strict: raises on bad format
                for sample in parsed.samples:
                    if sample.name in (family, family + "_total") and all(
                            sample.labels.get(k) == v for k, v in labels.items()):
                        return sample.value
            return 0

        code, before = self.http("/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(self.reaches("a.test"))
        self.assertFalse(self.reaches("nope.test"))
        self.proxy.wait_stat("listener.edge.close.no_route")
        code, after = self.http("/metrics")
        self.assertEqual(
            metric(after, "mcproxy_listener_connections", listener="edge") -
            metric(before, "mcproxy_listener_connections", listener="edge"), 2)
        self.assertEqual(metric(after, "mcproxy_listener_closes", listener="edge", reason="no_route"), 1)
        self.assertGreater(metric(after, "mcproxy_route_rx_bytes", listener="edge", route="a.test"), 0)
        self.assertEqual(self.http("/nope")[0], 404)

        # L7 requests feed the per-route latency histogram.
        www = os.path.join(self.workdir, "www-metrics")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "small.html"), "w") as f:
            f.write("hi\n")
        web = harness.Nghttpd(www)
        self.addCleanup(web.close)
        self.stub().AddRoute(self.pb.AddRouteRequest(listener="edge", route=self.route(
            "b.test", web.address, mode=self.config_pb.Route.L7, tls_cert=self.cert_b[0],
            tls_key=self.cert_b[1])))
        port = self.proxy.port()
        for _ in range(3):
            result = subprocess.run(["curl", "-sS", "--cacert", self.certs.ca_cert, "--resolve",
                                     f"b.test:{port}:127.0.0.1", f"https://b.test:{port}/small.html"],
                                    capture_output=True, text=True, timeout=20)
            self.assertEqual(result.stdout, "hi\n", result.stderr)
        code, text = self.http("/metrics")
        histogram = [f for f in text_string_to_metric_families(text)
                     if f.name == "mcproxy_route_request_duration_seconds"]
        self.assertEqual(histogram[0].type, "histogram")
        counts = {s.name: s.value for s in histogram[0].samples
                  if s.labels.get("route") == "b.test" and s.labels.get("le") in (None, "+Inf")}
        self.assertEqual(counts["mcproxy_route_request_duration_seconds_count"], 3)
        self.assertEqual(counts["mcproxy_route_request_duration_seconds_bucket"], 3)

    def test_peers_of_other_users_are_refused_unless_allowed(self):
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        if os.geteuid() != 0 or not os.path.exists(setpriv):
            self.skipTest("needs root and setpriv to act as another user")
        probe = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "true"],
                               capture_output=True)
        if probe.returncode != 0:  # e.g. a user namespace that maps only root
            self.skipTest("cannot switch to uid 65534 here: " + probe.stderr.decode())
        socket_dir = os.path.dirname(self.socket)
        os.chmod(self.socket, 0o666)  # let the file mode pass, so SO_PEERCRED decides
        os.chmod(socket_dir, 0o755)
        as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-sS",
                     "--http2-prior-knowledge", "--unix-socket", self.socket, "http://admin/healthz"]
        refused = subprocess.run(as_nobody, capture_output=True, text=True, timeout=20)
        self.assertNotEqual(refused.returncode, 0)
        harness.wait_until(lambda: "refused a client with uid 65534" in self.proxy.log(),
                           what="the refusal log line")
        self.assertEqual(self.proxy.terminate(), 0)
        os.chmod(socket_dir, 0o700)
        self.proxy = self.start_admin_proxy(extra_admin="allowed_uids: 65534")
        os.chmod(self.socket, 0o666)
        os.chmod(socket_dir, 0o755)
        allowed = subprocess.run(as_nobody, capture_output=True, text=True, timeout=20)
        os.chmod(socket_dir, 0o700)
        self.assertEqual(allowed.stdout, "ok\n", allowed.stderr)


class CertificateReloadTest(harness.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pb, cls.pb_grpc, cls.config_pb = load_stubs(cls.workdir)

    def test_reload_certificates_keeps_the_old_pair_when_the_new_one_is_broken(self):
        backend = self.echo_backend(self.cert_a)
        cert = os.path.join(self.workdir, "live.crt")
        key = os.path.join(self.workdir, "live.key")
        shutil.copy(self.cert_a[0], cert)
        shutil.copy(self.cert_a[1], key)
        sock = harness.short_socket_path(self, "reload.sock")
        proxy = self.start_proxy(f"""
            admin {{ socket: "{sock}" }}
            listeners {{ name: "l7" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" mode: L7
                        tls_cert: "{cert}" tls_key: "{key}" }} }}""",
                                 extra_args=("--db-poll-ms", "600000"))  # only the API reloads

        def serial():
            return served_certificate(proxy.port())

        first = serial()
        new_cert, new_key = self.certs.leaf("a2", ["a.test"])
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        admin = self.pb_grpc.AdminStub(grpc.insecure_channel(f"unix://{sock}"))
        admin.ReloadCertificates(self.pb.ReloadCertificatesRequest())
        second = serial()
        self.assertNotEqual(first, second)  # new handshakes get the new pair
        with open(key, "w") as f:
            f.write("not a key")
        with self.assertRaises(grpc.RpcError) as broken:
            admin.ReloadCertificates(self.pb.ReloadCertificatesRequest())
        self.assertEqual(broken.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn(".tls_key: cannot load private key", broken.exception.details())
        self.assertEqual(serial(), second)  # the old pair stays in use


class CertificateFileWatchTest(harness.ProxyTestCase):
    def test_changed_certificate_files_are_picked_up_and_a_broken_pair_is_refused(self):
        backend = self.echo_backend(self.cert_a)
        cert = os.path.join(self.workdir, "watched.crt")
        key = os.path.join(self.workdir, "watched.key")
        shutil.copy(self.cert_a[0], cert)
        shutil.copy(self.cert_a[1], key)
        proxy = self.start_proxy(f"""
            listeners {{ name: "w" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" mode: L7
                        tls_cert: "{cert}" tls_key: "{key}" }} }}""",
                                 extra_args=("--db-poll-ms", "100"))

        def served():
            return served_certificate(proxy.port())

        first = served()
        new_cert, new_key = self.certs.leaf("a3", ["a.test"])
        time.sleep(0.05)
        shutil.copy(new_key, key)
        shutil.copy(new_cert, cert)
        harness.wait_until(lambda: served() != first, what="the new certificate")
        second = served()
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        harness.wait_until(lambda: "reload refused" in proxy.log(), what="the refusal")
        self.assertIn("tls_cert", proxy.log())
        self.assertEqual(served(), second)  # the last good pair stays in use


if __name__ == "__main__":
    unittest.main()
