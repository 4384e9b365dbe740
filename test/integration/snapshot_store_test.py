"""mc-proxy running from the SQLite snapshot store: seeding, live changes, hot swap, upgrades."""

import os
import re
import socket
import ssl
import subprocess
import threading
import time
import unittest

from test.integration import harness


def route_config(routes, listener="127.0.0.1:0", name="s"):
    lines = "\n".join(f'  routes {{ hostname: "{h}" backend: "{b}" }}' for h, b in routes)
    return f'listeners {{ name: "{name}" address: "{listener}"\n{lines}\n}}\n'


class StoreTestCase(harness.ProxyTestCase):
    def db_proxy(self, db, config_text="", **kwargs):
        return self.start_proxy(config_text, extra_args=("--db", db, "--db-poll-ms", "50"),
                                **kwargs)

    def connect_ok(self, port, name, payload=b"hello"):
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        with harness.tls_connect(port, name, ctx) as conn:
            conn.sendall(payload)
            return conn.recv(len(payload)) == payload

    def refused(self, port, name):
        try:
            return not self.connect_ok(port, name)
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return True


class SeedingTest(StoreTestCase):
    def test_empty_database_is_seeded_and_later_starts_ignore_the_file(self):
        a = self.echo_backend(self.cert_a)
        b = self.echo_backend(self.cert_b)
        db = os.path.join(self.workdir, "seed.db")
        proxy = self.db_proxy(db, route_config([("a.test", a.address)]))
        self.assertIn("was empty: seeded version 1", proxy.log())
        self.assertTrue(self.connect_ok(proxy.port(), "a.test"))
        self.assertEqual(proxy.terminate(), 0)

        # A different file on the next start is not applied silently.
        proxy = self.db_proxy(db, route_config([("b.test", b.address)]))
        self.assertIn("is NOT applied", proxy.log())
        self.assertIn("mcproxyctl compile --config", proxy.log())
        self.assertTrue(self.connect_ok(proxy.port(), "a.test"))
        self.assertTrue(self.refused(proxy.port(), "b.test"))
        listing = harness.ctl("snapshots", "list", "--db", db)
        self.assertEqual(len(listing.stdout.strip().splitlines()), 2)  # header + version 1


class LiveChangeTest(StoreTestCase):
    def test_compile_by_another_process_reaches_the_running_proxy(self):
        a = self.echo_backend(self.cert_a)
        b = self.echo_backend(self.cert_b)
        db = os.path.join(self.workdir, "live.db")
        first = self.write_config("live1.textproto", route_config([("a.test", a.address)]))
        harness.ctl("compile", "--config", first, "--db", db)
        proxy = self.db_proxy(db)
        port = proxy.port()
        self.assertTrue(self.refused(port, "b.test"))

        second = self.write_config(
            "live2.textproto", route_config([("a.test", a.address), ("b.test", b.address)]))
        harness.ctl("compile", "--config", second, "--db", db)
        harness.wait_until(lambda: "reload done: config version 2" in proxy.log(),
                           what="the proxy to load version 2")
        self.assertTrue(self.connect_ok(port, "b.test"))

        # A rollback is a new version too, and the proxy follows it.
        harness.ctl("snapshots", "rollback", "1", "--db", db)
        harness.wait_until(lambda: "reload done: config version 3" in proxy.log(),
                           what="the proxy to load version 3")
        harness.wait_until(lambda: self.refused(port, "b.test"), what="b.test to be gone")

    def test_prune_keeps_the_newest_and_what_a_kept_rollback_restored(self):
        db = os.path.join(self.workdir, "prune.db")
        for i in (1, 2, 3):
            harness.ctl("compile", "--config", self.write_config(f"p{i}.textproto", route_config(
                [(f"v{i}.test", "127.0.0.1:9")])), "--db", db)
        harness.ctl("snapshots", "rollback", "1", "--db", db)  # version 4 restores 1
        result = harness.ctl("snapshots", "prune", "--db", db, "--keep", "1")
        self.assertIn("kept version 1: restored by version 4", result.stdout)
        self.assertIn("deleted 2 version(s) (2..3)", result.stdout)
        versions = [line.split()[0] for line in harness.ctl(
            "snapshots", "list", "--db", db).stdout.splitlines()[1:]]
        self.assertEqual(["4", "1"], versions)
        self.assertIn("ok: 2 version(s) checked",
                      harness.ctl("snapshots", "verify", "--db", db).stdout)
        # A later compile builds on what is left; the version numbers go on.
        harness.ctl("compile", "--config", self.write_config("p5.textproto", route_config(
            [("v5.test", "127.0.0.1:9")])), "--db", db)
        self.assertIn('"version": 5', harness.ctl("snapshots", "list", "--db", db, "--json").stdout)
        self.assertEqual(2, harness.ctl("snapshots", "prune", "--db", db, check=False).returncode)

    def test_prune_keeps_the_version_a_proxy_still_runs(self):
        db = os.path.join(self.workdir, "running.db")
        harness.ctl("compile", "--config", self.write_config(
            "r1.textproto", route_config([("a.test", "127.0.0.1:9")])), "--db", db)
        proxy = self.db_proxy(db)
        taken = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(taken.close)
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        harness.ctl("compile", "--config", self.write_config("r2.textproto", route_config(
            [("b.test", "127.0.0.1:9")], listener=busy)), "--db", db)
        harness.wait_until(lambda: "reload refused, still running version 1" in proxy.log(),
                           what="version 2 refused")
        dry = harness.ctl("snapshots", "prune", "--db", db, "--keep", "1", "--dry-run")
        self.assertIn(f"kept version 1: running in pid {proxy.proc.pid}", dry.stdout)
        self.assertIn("would delete 0 version(s)", dry.stdout)
        self.assertEqual(0, proxy.terminate())
        # Gone (its record forgotten at exit): version 1 may go now.
        result = harness.ctl("snapshots", "prune", "--db", db, "--keep", "1")
        self.assertIn("deleted 1 version(s) (1..1)", result.stdout)

    def test_invalid_compile_changes_nothing(self):
        db = os.path.join(self.workdir, "invalid.db")
        good = self.write_config("good.textproto", route_config([("a.test", "127.0.0.1:9")]))
        harness.ctl("compile", "--config", good, "--db", db)
        bad = self.write_config("bad.textproto", route_config([("a.test", "127.0.0.1:99999")]))
        result = harness.ctl("compile", "--config", bad, "--db", db, check=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("listeners[0].routes[0].backend", result.stderr)
        listing = harness.ctl("snapshots", "list", "--db", db, "--json")
        self.assertEqual(listing.stdout.count('"version"'), 1)

    def test_listener_added_and_removed_without_restart(self):
        a = self.echo_backend(self.cert_a)
        db = os.path.join(self.workdir, "listeners.db")
        one = route_config([("a.test", a.address)], name="one")
        harness.ctl("compile", "--config", self.write_config("l1.textproto", one), "--db", db)
        proxy = self.db_proxy(db)
        two = one + route_config([("a.test", a.address)], name="two", listener="[::1]:0" if
                                 socket.has_ipv6 else "127.0.0.2:0")
        harness.ctl("compile", "--config", self.write_config("l2.textproto", two), "--db", db)
        harness.wait_until(lambda: "listener two listening on" in proxy.log(), what="listener two")
        # Logged just after the listener line, once the snapshot is published.
        harness.wait_until(lambda: "reload done: config version 2" in proxy.log(),
                           what="reload of version 2")
        harness.ctl("compile", "--config", self.write_config("l3.textproto", one), "--db", db)
        harness.wait_until(lambda: "closed; its open connections continue" in proxy.log(),
                           what="listener two to close")
        self.assertTrue(self.connect_ok(proxy.port("one"), "a.test"))


class HotSwapTest(StoreTestCase):
    def test_streaming_connection_survives_removal_of_its_route(self):
        a = self.echo_backend(self.cert_a)
        db = os.path.join(self.workdir, "swap.db")
        with_route = self.write_config("with.textproto", route_config([("a.test", a.address)]))
        without = self.write_config("without.textproto", route_config([("z.test", a.address)]))
        harness.ctl("compile", "--config", with_route, "--db", db)
        proxy = self.db_proxy(db)
        port = proxy.port()

        errors = []
        exchanged = [0]
        stop = threading.Event()

        def stream():
            try:
                with harness.tls_connect(port, "a.test", self.certs.client_context()) as conn:
                    while not stop.is_set():
                        chunk = os.urandom(16384)
                        conn.sendall(chunk)
                        got = b""
                        while len(got) < len(chunk):
                            got += conn.recv(65536)
                        if got != chunk:
                            errors.append("echo mismatch")
                            return
                        exchanged[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure of the stream is the finding
                errors.append(repr(e))

        streamer = threading.Thread(target=stream)
        streamer.start()
        harness.wait_until(lambda: exchanged[0] > 10, what="stream to flow")
        harness.ctl("compile", "--config", without, "--db", db)
        harness.wait_until(lambda: "reload done: config version 2" in proxy.log(), what="removal")
        before = exchanged[0]
        harness.wait_until(lambda: self.refused(port, "a.test"), what="new a.test refused")
        harness.wait_until(lambda: exchanged[0] > before + 20, what="old stream to keep flowing")
        harness.ctl("compile", "--config", with_route, "--db", db)
        harness.wait_until(lambda: "reload done: config version 3" in proxy.log(), what="re-add")
        self.assertTrue(self.connect_ok(port, "a.test"))
        stop.set()
        streamer.join(20)
        self.assertEqual(errors, [])
        proxy.wait_stat("listener.s.close.no_route")


class UpgradeTest(StoreTestCase):
    def test_database_made_by_schema_1_is_upgraded_at_start(self):
        a = self.echo_backend(self.cert_a)
        db = os.path.join(self.workdir, "v1.db")
        harness.ctl("db", "migrate", "--db", db, "--to", "1")
        # An old file with data in it, written the way schema 1 knew.
        subprocess.run(["sqlite3", db, f"""
            INSERT INTO snapshots (version, created_at, source, content_hash)
              VALUES (1, '2026-01-01T00:00:00Z', 'made by hand', '{"0" * 64}');
            INSERT INTO listeners (snapshot_version, position, name, address)
              VALUES (1, 0, 'old', '127.0.0.1:0');
            INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend, mode)
              VALUES (1, 'old', 0, 'a.test', '{a.address}', 'l4');"""], check=True)
        proxy = self.db_proxy(db)
        latest = int(re.search(r"schema version (\d+)", proxy.log()).group(1))
        self.assertGreaterEqual(latest, 3)
        for migration in range(2, latest + 1):  # every one after 1 was applied on this start
            self.assertIn(f"applied schema migration {migration}\n", proxy.log())
        self.assertTrue(self.connect_ok(proxy.port(), "a.test"))
        migrations = subprocess.run(["sqlite3", db, "SELECT group_concat(version) FROM schema_migrations"],
                                    capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(migrations, ",".join(str(v) for v in range(1, latest + 1)))
        journal = subprocess.run(["sqlite3", db, "PRAGMA journal_mode"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        self.assertEqual(journal, "wal")


class ReloadSoakTest(StoreTestCase):
    RELOADS = 1000

    def test_thousand_reloads_while_traffic_flows(self):
        a = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(route_config([("a.test", a.address)]))
        port = proxy.port()
        errors = []
        connections = [0]
        stop = threading.Event()
        ctx = self.certs.client_context()

        def traffic():
            while not stop.is_set():
                try:
                    with harness.tls_connect(port, "a.test", ctx) as conn:
                        conn.sendall(b"x" * 1000)
                        got = b""
                        while len(got) < 1000:
                            got += conn.recv(4096)
                        conn.unwrap()  # close_notify both ways, so the backend closes at once
                    connections[0] += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        def reloads_done():
            return proxy.log().count("reload done")

        def reload_n(n):
            for _ in range(n):
                count = reloads_done()
                proxy.proc.send_signal(__import__("signal").SIGHUP)
                harness.wait_until(lambda: reloads_done() > count, what="reload", interval=0.002)

        threads = [threading.Thread(target=traffic) for _ in range(2)]
        for thread in threads:
            thread.start()
        reload_n(100)  # warm up allocator pools before measuring
        rss_before = harness.rss_kib(proxy.proc.pid)
        reload_n(self.RELOADS - 100)
        rss_after = harness.rss_kib(proxy.proc.pid)
        stop.set()
        for thread in threads:
            thread.join(20)
        self.assertEqual(errors, [])
        self.assertGreater(connections[0], 100)
        self.assertGreaterEqual(reloads_done(), self.RELOADS)
        # Bound: 2 MiB over 900 reloads, i.e. under 2.3 KiB a reload, less than one leaked
        # snapshot of this config each time. A sanitizer's allocator keeps freed memory in
        # quarantine, so there RSS says nothing; LeakSanitizer judges at exit instead (below).
        if not harness.sanitized():
            self.assertLess(rss_after - rss_before, 2048, f"RSS {rss_before} -> {rss_after} KiB")
        proxy_idle = lambda: proxy.stats().get("listener.s.downstream_cx_active", 0) == 0
        harness.wait_until(proxy_idle, what="every connection to close", interval=0.2)
        # With no connection left holding an older one, every replaced snapshot was freed: only
        # the current one is alive.
        # (A closed connection is destroyed one event-loop turn later, hence the short wait.)
        harness.wait_until(lambda: proxy.stats()["server.snapshots_alive"] == 1, timeout=5,
                           interval=0.1, what="one live snapshot")
        self.assertEqual(proxy.stats()["listener.s.downstream_cx_total"], connections[0])
        self.assertEqual(proxy.terminate(), 0, proxy.log()[-3000:])  # LeakSanitizer exits 23


if __name__ == "__main__":
    unittest.main()
