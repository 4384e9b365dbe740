"""Fleet (issue 17): mc-proxy nodes following one published config through a real etcd.

Every test starts its own etcd (Debian's etcd-server) on 127.0.0.1, the real mc-proxy nodes
(--fleet) and mcproxyctl as the publisher; all are stopped when the test ends.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.request

import harness

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
FLEET = "edge"


class Etcd:
    """A one-member etcd on two ports the OS picked, with its data in `directory`; it can be
    killed and started again on the same ports and data (the fault tests)."""

    def __init__(self, directory, tls=None):
        self.directory = directory
        self.tls = tls  # (ca, cert, key): clients must show a certificate the CA signed
        self.proc = None
        # A port free_port() picked may be taken by another test before etcd binds it: then
        # (and only then) it starts again on two other ports, a bounded number of times.
        for attempt in range(3):
            self.client_port = harness.free_port()
            self.peer_port = harness.free_port()
            try:
                self.start()
                break
            except AssertionError:
                if attempt == 2 or "address already in use" not in self.log_text():
                    raise
                self.kill()
                shutil.rmtree(os.path.join(directory, "etcd-data"), ignore_errors=True)
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        self.url = f"{scheme}://{host}:{self.client_port}"

    def start(self):
        listen = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [ETCD, "--name", "t", "--data-dir", os.path.join(self.directory, "etcd-data"),
                "--listen-client-urls", listen, "--advertise-client-urls", listen,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"t={peer}", "--log-level", "error"]
        if self.tls:
            ca, cert, key = self.tls
            args += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                     "--client-cert-auth"]
        self.log_path = os.path.join(self.directory, f"etcd-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            harness.wait_port(self.client_port, self.proc, what="etcd")
        except AssertionError as e:
            raise AssertionError(f"{e}: {self.log_text()[-2000:]}") from None

    def log_text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.log:
            self.log.close()
            self.log = None


class FleetTest(harness.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = harness.TlsEchoBackend(cls.loop, *cls.cert_a)

    @classmethod
    def tearDownClass(cls):
        cls.echo.close()
        super().tearDownClass()

    def setUp(self):
        self.dir = os.path.join(self.workdir, self.id().rsplit(".", 1)[1])
        os.makedirs(self.dir)
        self.etcd = Etcd(self.dir)
        self.addCleanup(self.etcd.kill)
        self.author = os.path.join(self.dir, "author.db")

    # --- authoring ---------------------------------------------------------------------------

    def config(self, extra_routes="", listener_extra=""):
        return (f'listeners {{ name: "edge" address: "127.0.0.1:0" {listener_extra}\n'
                f'  routes {{ hostname: "a.test" backend: "{self.echo.address}" }}\n'
                f'  {extra_routes} }}\n')

    def compile(self, text, db=None):
        path = os.path.join(self.dir, f"config-{time.monotonic_ns()}.textproto")
        with open(path, "w") as f:
            f.write(text)
        return harness.ctl("compile", "--config", path, "--db", db or self.author, check=False)

    def publish(self, *args, etcd=None, check=True):
        result = harness.ctl("publish", "--db", self.author, "--etcd", (etcd or self.etcd).url,
                             "--fleet", FLEET, *args, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"publish {args} exited {result.returncode}: {result.stderr}")
        return result

    def published(self, number):
        """Compiles a config whose route v<number>.test is new, and publishes it."""
        self.assertEqual(self.compile(self.config(
            f'routes {{ hostname: "v{number}.test" backend: "{self.echo.address}" }}')).returncode,
            0)
        out = self.publish().stdout
        return int(re.search(r"version (\d+) \((\w+),", out).group(1)), \
            re.search(r"version \d+ \((\w+),", out).group(1)

    def fleet_status(self, etcd_args=()):
        result = harness.ctl("fleet", "status", "--etcd", self.etcd.url, "--fleet", FLEET,
                             "--json", *etcd_args)
        return json.loads(result.stdout)

    # --- nodes -------------------------------------------------------------------------------

    def node(self, name, cwd=None, etcd_args=()):
        """A fleet node with its own database; its admin HTTP port is read from its log."""
        db = os.path.join(self.dir, f"{name}.db")
        proxy = harness.Proxy('admin { http_address: "127.0.0.1:0" }', self.dir, workers=1,
                              extra_args=("--db", db, "--fleet", FLEET, "--etcd", self.etcd.url,
                                          "--node-id", name, *etcd_args),
                              cwd=cwd)
        self.addCleanup(proxy.kill)
        proxy.name = name
        proxy.db = db
        proxy.admin_port = int(harness.wait_until(
            lambda: re.search(r"admin HTTP .* on 127\.0\.0\.1:(\d+)", proxy.log()),
            what="admin HTTP").group(1))
        return proxy

    def readyz(self, proxy):
        """(status, body); (0, "") while the admin plane does not answer (a busy machine)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/readyz",
                                        timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (TimeoutError, socket.timeout, urllib.error.URLError):
            return 0, ""

    def wait_applied(self, proxy, version, timeout=15):
        wanted = f"fleet {FLEET} node {proxy.name} version {version} applied"
        return harness.wait_until(lambda: wanted in self.readyz(proxy)[1], timeout=timeout,
                                  interval=0.05, what=f"{proxy.name} to apply version {version}")

    def listener_port(self, proxy):
        match = harness.wait_until(
            lambda: re.search(r"listener edge listening on 127\.0\.0\.1:(\d+)", proxy.log()),
            what="the fleet's listener")
        return int(match.group(1))

    def echo_through(self, port, server_name="a.test"):
        """A TLS echo through a passthrough route (the backend's certificate is a.test's)."""
        ctx = self.certs.client_context()
        ctx.check_hostname = server_name == "a.test"
        with harness.tls_connect(port, server_name, ctx) as tls:
            tls.sendall(b"ping\n")
            return harness.read_line(tls)

    # --- tests -------------------------------------------------------------------------------

    def test_three_nodes_follow_twenty_publishes(self):
        nodes = [self.node(f"n{i}") for i in range(1, 4)]
        for number in range(1, 21):
            version, short_hash = self.published(number)
            self.assertEqual(version, number)
            for proxy in nodes:
                self.wait_applied(proxy, version)
        status = self.fleet_status()
        self.assertEqual(int(status["current"]["version"]), 20)
        self.assertEqual(sorted(n["node_id"] for n in status["nodes"]), ["n1", "n2", "n3"])
        for entry in status["nodes"]:
            self.assertEqual(entry["state"], "applied")
            self.assertEqual(int(entry["applied_version"]), 20)
            self.assertEqual(entry["applied_hash"], status["current"]["content_hash"])
        # Each node stored every fleet version as a local one, and routes with the newest.
        for proxy in nodes:
            code, body = self.readyz(proxy)
            self.assertEqual(code, 200)
            self.assertIn(f"hash {status['current']['content_hash']}", body)
            self.assertEqual(self.echo_through(self.listener_port(proxy), "a.test"), "ping\n")
            listing = harness.ctl("snapshots", "list", "--db", proxy.db, "--json")
            sources = [s["source"] for s in json.loads(listing.stdout)]
            self.assertEqual(len(sources), 20)
            self.assertTrue(all(s.startswith(f"fleet:{FLEET} version ") for s in sources), sources)
        # The table form names every node.
        table = harness.ctl("fleet", "status", "--etcd", self.etcd.url, "--fleet", FLEET).stdout
        self.assertRegex(table, r"current version 20 ")
        for name in ("n1", "n2", "n3"):
            self.assertRegex(table, rf"{name}\s+applied\s+20\s")
        # A node that stops takes its key with it (its lease is revoked).
        nodes[2].terminate()
        harness.wait_until(lambda: len(self.fleet_status()["nodes"]) == 2, timeout=10,
                           what="n3's key to go")

    def test_node_lacking_a_certificate_refuses_the_version_others_apply(self):
        # The L7 route names its certificate relative to the node's working directory: n1 and
        # n2 have certs/, n3 does not.
        homes = []
        for name in ("n1", "n2", "n3"):
            home = os.path.join(self.dir, f"home-{name}")
            os.makedirs(home)
            if name != "n3":
                os.makedirs(os.path.join(home, "certs"))
                shutil.copy(self.cert_b[0], os.path.join(home, "certs", "b.crt"))
                shutil.copy(self.cert_b[1], os.path.join(home, "certs", "b.key"))
            homes.append(home)
        nodes = [self.node(name, cwd=home) for name, home in zip(("n1", "n2", "n3"), homes)]
        first, _ = self.published(1)
        for proxy in nodes:
            self.wait_applied(proxy, first)
        # The author compiles it in a directory that has the files too.
        author_home = homes[0]
        text = self.config(
            f'routes {{ hostname: "b.test" backend: "{self.echo.address}" mode: L7 '
            f'tls_cert: "certs/b.crt" tls_key: "certs/b.key" }}')
        path = os.path.join(author_home, "l7.textproto")
        with open(path, "w") as f:
            f.write(text)
        subprocess.run([harness.binary("mcproxyctl"), "compile", "--config", path, "--db",
                        self.author], check=True, capture_output=True, cwd=author_home)
        second = int(re.search(r"version (\d+)", self.publish().stdout).group(1))
        self.wait_applied(nodes[0], second)
        self.wait_applied(nodes[1], second)
        refused = harness.wait_until(
            lambda: next((n for n in self.fleet_status()["nodes"]
                          if n["node_id"] == "n3" and n["state"] == "refused"), None),
            what="n3 to refuse")
        self.assertEqual(int(refused["refused_version"]), second)
        self.assertEqual(int(refused["applied_version"]), first)  # still runs the last good one
        self.assertIn("certs/b.crt", refused["error"])
        self.assertIn("tls_cert", refused["error"])
        code, body = self.readyz(nodes[2])
        self.assertEqual(code, 200)
        self.assertIn(f"fleet {FLEET} node n3 version {first} refused", body)
        self.assertIn(f"refused version {second}:", body)
        self.assertIn("REFUSED on this node", nodes[2].log())
        self.assertEqual(self.echo_through(self.listener_port(nodes[2])), "ping\n")
        # The nodes that had the files serve the new L7 route.
        ctx = self.certs.client_context()
        with harness.tls_connect(self.listener_port(nodes[0]), "b.test", ctx) as tls:
            self.assertEqual(tls.getpeercert()["subject"][0][0][1], "b.test")
        # The table shows the refusal with its reason.
        table = harness.ctl("fleet", "status", "--etcd", self.etcd.url, "--fleet", FLEET).stdout
        self.assertRegex(table, rf"n3\s+refused\s+{first}\s.*certs/b\.crt")

    def test_a_snapshot_that_does_not_hash_to_what_was_published_is_refused(self):
        proxy = self.node("n1")
        first, _ = self.published(1)
        self.wait_applied(proxy, first)
        # current pointing at bytes that do not hash to its content_hash (a bad chunk).
        current = json.loads(subprocess.run(
            ["etcdctl", "--endpoints", self.etcd.url, "get", f"/mcproxy/{FLEET}/current",
             "--print-value-only"], check=True, capture_output=True, text=True,
            env={**os.environ, "ETCDCTL_API": "3"}).stdout)
        current["version"] = "99"
        current["content_hash"] = "0" * 64
        subprocess.run(["etcdctl", "--endpoints", self.etcd.url, "put",
                        f"/mcproxy/{FLEET}/current", json.dumps(current)], check=True,
                       capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
        node = harness.wait_until(
            lambda: next((n for n in self.fleet_status()["nodes"] if n["state"] == "refused"),
                         None), what="the node to refuse")
        self.assertEqual(int(node["refused_version"]), 99)
        self.assertIn("not the published " + "0" * 64, node["error"])
        self.assertEqual(int(node["applied_version"]), first)

    def test_etcd_killed_and_restarted_under_traffic_loses_no_connection(self):
        nodes = [self.node("n1"), self.node("n2")]
        first, _ = self.published(1)
        for proxy in nodes:
            self.wait_applied(proxy, first)
        ports = [self.listener_port(proxy) for proxy in nodes]
        stop = threading.Event()
        results = {"ok": 0, "failed": []}

        def traffic():
            i = 0
            while not stop.is_set():
                try:
                    reply = self.echo_through(ports[i % 2])
                    if reply == "ping\n":
                        results["ok"] += 1
                    else:
                        results["failed"].append(repr(reply))
                except (OSError, ssl.SSLError) as e:
                    results["failed"].append(repr(e))
                i += 1

        client = threading.Thread(target=traffic)
        client.start()
        try:
            time.sleep(0.5)
            self.etcd.kill()
            for proxy in nodes:
                harness.wait_until(lambda p=proxy: "etcd UNREACHABLE" in self.readyz(p)[1],
                                   what="the node to notice etcd is gone")
                self.assertEqual(self.readyz(proxy)[0], 200)  # still serving, still ready
            time.sleep(1.5)
            during_outage = results["ok"]
            self.etcd.start()
            second, _ = self.published(2)
            for proxy in nodes:
                self.wait_applied(proxy, second, timeout=20)  # reconnected and caught up
                self.assertIn("etcd connected", self.readyz(proxy)[1])
            time.sleep(0.5)
        finally:
            stop.set()
            client.join(30)
        self.assertEqual(results["failed"], [])
        self.assertGreater(during_outage, 10)
        self.assertGreater(results["ok"], during_outage)
        for proxy in nodes:
            self.assertIn("lost etcd", proxy.log())
            self.assertEqual(self.echo_through(self.listener_port(proxy), "v2.test"), "ping\n")

    def test_node_restarted_without_etcd_serves_its_last_version(self):
        proxy = self.node("n1")
        first, _ = self.published(1)
        self.wait_applied(proxy, first)
        self.assertEqual(proxy.terminate(), 0)
        self.etcd.kill()
        again = self.node("n1")
        harness.wait_until(lambda: "WITHOUT FOLLOWING THE FLEET" in again.log(),
                           what="the node to say it serves without etcd")
        self.assertRegex(again.log(), r"etcd unreachable .*: SERVING local version 1 \(fleet "
                                      r"version 1, \w+\) WITHOUT FOLLOWING THE FLEET")
        code, body = self.readyz(again)
        self.assertEqual(code, 200)
        self.assertIn("etcd UNREACHABLE", body)
        self.assertEqual(self.echo_through(self.listener_port(again)), "ping\n")
        # etcd back: the node follows again and takes the next version.
        self.etcd.start()
        second, _ = self.published(2)
        self.wait_applied(again, second, timeout=20)

    def test_two_publishers_race_and_exactly_one_wins_each_round(self):
        for number in range(1, 21):  # versions 1..20 in the author's database
            self.assertEqual(self.compile(self.config(
                f'routes {{ hostname: "r{number}.test" backend: "{self.echo.address}" }}'))
                .returncode, 0)
        current = 0
        first_winner = None
        for round_number in range(10):
            mine, theirs = 2 * round_number + 1, 2 * round_number + 2
            racers = [subprocess.Popen(
                [harness.binary("mcproxyctl"), "publish", "--db", self.author, "--etcd",
                 self.etcd.url, "--fleet", FLEET, "--version", str(version), "--if-current",
                 str(current)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for version in (mine, theirs)]
            outcomes = [(racer.wait(60), *racer.communicate()) for racer in racers]
            codes = [code for code, _, _ in outcomes]
            self.assertEqual(sorted(codes), [0, 1], outcomes)
            loser = next(err for code, _, err in outcomes if code == 1)
            self.assertRegex(loser, r"another publisher moved|runs version \d+, not "
                                    rf"{current} \(--if-current\)")
            winner = (mine, theirs)[codes.index(0)]
            status = self.fleet_status()
            self.assertEqual(int(status["current"]["version"]), winner)
            current = winner
            first_winner = first_winner or winner
        # A version number already published with other content (from another database) is
        # refused.
        other = os.path.join(self.dir, "other.db")
        for name in ("x", "y"):
            self.assertEqual(self.compile(self.config(
                f'routes {{ hostname: "{name}.test" backend: "127.0.0.1:1" }}'), db=other)
                .returncode, 0)
        clash = harness.ctl("publish", "--db", other, "--etcd", self.etcd.url, "--fleet", FLEET,
                            "--version", str(first_winner), check=False)
        self.assertEqual(clash.returncode, 1, clash.stderr)
        self.assertIn(f"already has a version {first_winner} with another content", clash.stderr)

    def test_local_changes_are_refused_on_a_fleet_node(self):
        socket_path = harness.short_socket_path(self, "admin.sock")
        proxy = self.node("n1", etcd_args=("--admin-socket", socket_path))
        first, _ = self.published(1)
        self.wait_applied(proxy, first)
        refused = self.compile(self.config(), db=proxy.db)
        self.assertEqual(refused.returncode, 1)
        self.assertIn(f"this database follows fleet {FLEET}", refused.stderr)
        api = harness.ctl("--socket", socket_path, "routes", "add", "--listener", "edge",
                          "--hostname", "new.test", "--backend", self.echo.address, "--mode",
                          "l4", check=False)
        self.assertEqual(api.returncode, 1, api.stdout + api.stderr)
        self.assertIn(f"follows fleet {FLEET}", api.stderr)
        rollback = harness.ctl("snapshots", "rollback", "1", "--db", proxy.db, check=False)
        self.assertNotEqual(rollback.returncode, 0)
        self.assertEqual(json.loads(harness.ctl("snapshots", "list", "--db", proxy.db,
                                                "--json").stdout)[0]["version"], 1)
        self.assertIn("mc-proxy", harness.ctl("--socket", socket_path, "status").stdout)
        # Started without --fleet, the database takes local changes again.
        self.assertEqual(proxy.terminate(), 0)
        standalone = self.start_proxy('admin { http_address: "127.0.0.1:0" }', workers=1,
                                      extra_args=("--db", proxy.db))
        self.assertIn(f"followed fleet {FLEET}", standalone.log())
        self.assertEqual(self.compile(self.config('routes { hostname: "local.test" backend: '
                                                  '"127.0.0.1:1" }'), db=proxy.db).returncode, 0)

    def test_prune_keeps_the_newest_versions_and_what_current_uses(self):
        proxy = self.node("n1")
        for number in range(1, 5):
            version, _ = self.published(number)
        self.wait_applied(proxy, version)

        def keys(prefix):
            out = subprocess.run(["etcdctl", "--endpoints", self.etcd.url, "get", "--prefix",
                                  "--keys-only", prefix], check=True, capture_output=True,
                                 text=True, env={**os.environ, "ETCDCTL_API": "3"}).stdout
            return [k for k in out.split() if k]

        dry = harness.ctl("fleet", "prune", "--etcd", self.etcd.url, "--fleet", FLEET, "--keep",
                          "2", "--dry-run")
        self.assertIn("would delete version(s) 1, 2 and 2 content(s)", dry.stdout)
        self.assertEqual(len(keys(f"/mcproxy/{FLEET}/snapshots/")), 4)
        pruned = harness.ctl("fleet", "prune", "--etcd", self.etcd.url, "--fleet", FLEET,
                             "--keep", "2")
        self.assertIn("deleted version(s) 1, 2 and 2 content(s) no kept version uses; kept 3, 4",
                      pruned.stdout)
        self.assertEqual(sorted(keys(f"/mcproxy/{FLEET}/snapshots/")),
                         [f"/mcproxy/{FLEET}/snapshots/3", f"/mcproxy/{FLEET}/snapshots/4"])
        self.assertEqual(len(keys(f"/mcproxy/{FLEET}/chunks/")), 2)
        # Rollback to a kept version still works, and the node follows it.
        self.publish("--version", "3")
        self.wait_applied(proxy, 3)

    def test_bad_fleet_flags_are_refused_before_anything_starts(self):
        db = os.path.join(self.dir, "n.db")
        for args, message in (
                (("--fleet", FLEET), "--fleet needs --db"),
                (("--db", db, "--fleet", "a/b", "--etcd", self.etcd.url), '--fleet "a/b" may'),
                (("--db", db, "--fleet", FLEET, "--etcd", "127.0.0.1:2379"),
                 "is not an http:// or https:// URL"),
                (("--db", db, "--fleet", FLEET, "--etcd", self.etcd.url, "--node-id", "n 1"),
                 '--node-id "n 1" may'),
                (("--db", db, "--etcd", self.etcd.url), "--etcd is used with --fleet"),
                (("--db", db, "--fleet", FLEET, "--etcd", self.etcd.url, "--etcd-cert", "c"),
                 "--etcd-cert and --etcd-key go together")):
            result = subprocess.run([harness.binary("mc-proxy"), *args], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(message, result.stderr)
        self.assertFalse(os.path.exists(db))

    def test_large_snapshot_is_chunked(self):
        routes = "\n".join(f'routes {{ hostname: "h{i}.bulk.test" backend: "127.0.0.1:{1000 + i % 50000}" }}'
                           for i in range(40000))
        self.assertEqual(self.compile(self.config(routes)).returncode, 0)
        out = self.publish().stdout
        chunks = int(re.search(r"in (\d+) chunk", out).group(1))
        self.assertGreaterEqual(chunks, 2, out)
        proxy = self.node("n1")
        self.wait_applied(proxy, 1, timeout=60)
        self.assertEqual(self.echo_through(self.listener_port(proxy)), "ping\n")

    def test_etcd_over_tls_with_a_client_certificate(self):
        self.etcd.kill()
        server_cert, server_key = self.certs.leaf("etcd-server", ["localhost"])
        client_cert, client_key = self.certs.leaf("fleet-client", ["fleet-client"])
        secure_dir = os.path.join(self.dir, "secure")
        os.makedirs(secure_dir)
        secure = Etcd(secure_dir, tls=(self.certs.ca_cert, server_cert, server_key))
        self.addCleanup(secure.kill)
        tls_args = ("--etcd-ca", self.certs.ca_cert, "--etcd-cert", client_cert, "--etcd-key",
                    client_key)
        self.compile(self.config())
        # Without a client certificate etcd refuses the connection: a clear error, exit 3.
        bare = self.publish("--etcd-ca", self.certs.ca_cert, etcd=secure, check=False)
        self.assertEqual(bare.returncode, 3, bare.stderr)
        self.assertIn("etcd", bare.stderr)
        self.publish(*tls_args, etcd=secure)
        self.etcd = secure
        proxy = self.node("n1", etcd_args=tls_args)
        self.wait_applied(proxy, 1)
        status = self.fleet_status(tls_args)
        self.assertEqual(status["nodes"][0]["state"], "applied")


if __name__ == "__main__":
    unittest.main()
