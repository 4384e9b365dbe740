"""SIGKILL at any moment leaves the snapshot store at the previous version or the new one."""

import json
import os
import random
import signal
import subprocess
import time
import unittest

from test.integration import harness

ROUTES = 20000


def big_config(backend_port):
    lines = [f'  routes {{ hostname: "h{i}.crash.test" backend: "127.0.0.1:{backend_port}" }}'
             for i in range(ROUTES)]
    return 'listeners { name: "c" address: "127.0.0.1:0"\n' + "\n".join(lines) + "\n}\n"


class CrashSafetyTest(harness.ProxyTestCase):
    def versions(self, db):
        listing = harness.ctl("snapshots", "list", "--db", db, "--json")
        return json.loads(listing.stdout)

    def assert_consistent(self, db):
        verify = harness.ctl("snapshots", "verify", "--db", db, check=False)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    def test_killing_compile_at_any_moment(self):
        db = os.path.join(self.workdir, "crash.db")
        config_a = self.write_config("a.textproto", big_config(9001))
        config_b = self.write_config("b.textproto", big_config(9002))
        harness.ctl("compile", "--config", config_a, "--db", db)
        started = time.monotonic()
        harness.ctl("compile", "--config", config_b, "--db", db)
        full_compile = time.monotonic() - started
        hashes = {v["content_hash"] for v in self.versions(db)}
        self.assertEqual(len(hashes), 2)

        rng = random.Random(1234)  # fixed seed: the same kill points on every run
        completed = killed = 0
        for attempt in range(12):
            before = self.versions(db)
            config = config_a if attempt % 2 == 0 else config_b
            proc = subprocess.Popen([harness.binary("mcproxyctl"), "compile", "--config", config,
                                     "--db", db], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, full_compile * 1.2))
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(30)
            killed += code == -signal.SIGKILL
            completed += code == 0
            after = self.versions(db)
            self.assert_consistent(db)
            # Either nothing was added or exactly one whole version was.
            self.assertIn(len(after) - len(before), (0, 1))
            self.assertIn(after[0]["content_hash"], hashes)
            self.assertEqual(after[0]["routes"], ROUTES)
        print(f"compile: {killed} killed, {completed} completed", flush=True)
        self.assertGreater(killed, 0, "no compile was killed mid-way; the test proved nothing")

    def test_killing_small_changes_and_prunes_over_shared_rows(self):
        """Versions share the routes they do not change: a change writes a row or two and closes
        as many; a prune keeps rows that kept versions share. A kill mid-way leaves all of that
        whole."""
        db = os.path.join(self.workdir, "shared.db")
        base = big_config(9001)
        variants = {
            "added": base.replace("\n}\n", '\n  routes { hostname: "new.crash.test" backend:'
                                            ' "127.0.0.1:9009" }\n}\n'),
            "changed": base.replace('"h5.crash.test" backend: "127.0.0.1:9001"',
                                    '"h5.crash.test" backend: "127.0.0.1:9005"'),
            "removed": base.replace('  routes { hostname: "h7.crash.test" backend: '
                                    '"127.0.0.1:9001" }\n', ""),
            "inserted": base.replace('  routes { hostname: "h100.crash.test"',
                                     '  routes { hostname: "mid.crash.test" backend: '
                                     '"127.0.0.1:9008" }\n  routes { hostname: "h100.crash.test"'),
        }
        paths = {name: self.write_config(f"{name}.textproto", text)
                 for name, text in variants.items()}
        harness.ctl("compile", "--config", self.write_config("base.textproto", base), "--db", db)
        # Each variant's content hash, and how long a small change takes here.
        scratch = os.path.join(self.workdir, "scratch.db")
        harness.ctl("compile", "--config", self.write_config("base2.textproto", base), "--db",
                    scratch)
        started = time.monotonic()
        for path in paths.values():
            harness.ctl("compile", "--config", path, "--db", scratch)
        small_change = (time.monotonic() - started) / len(paths)
        hashes = {v["content_hash"] for v in self.versions(scratch)}
        route_rows = lambda: int(subprocess.run(
            ["sqlite3", db, "SELECT count(*) FROM routes"], capture_output=True, text=True,
            check=True).stdout)
        rng = random.Random(4321)
        killed = 0
        names = sorted(paths)
        attempts = 10
        for attempt in range(attempts):
            before = self.versions(db)
            path = paths[names[attempt % len(names)]]
            proc = subprocess.Popen([harness.binary("mcproxyctl"), "compile", "--config", path,
                                     "--db", db], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, small_change * 1.2))
            proc.send_signal(signal.SIGKILL)
            killed += proc.wait(30) == -signal.SIGKILL
            after = self.versions(db)
            self.assert_consistent(db)  # every version's rows hash to its content hash
            self.assertIn(len(after) - len(before), (0, 1))
            self.assertIn(after[0]["content_hash"], hashes)
        # The versions of 20,000 routes share their rows: a few rows per change, not copies.
        self.assertLess(route_rows(), ROUTES + 1 + attempts * 3)
        self.assertGreater(killed, 0, "no change was killed mid-way; the test proved nothing")
        # A prune killed at any moment deletes whole versions or nothing, never a shared row.
        newest = self.versions(db)[0]
        proc = subprocess.Popen([harness.binary("mcproxyctl"), "snapshots", "prune", "--db", db,
                                 "--keep", "1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.assert_consistent(db)
        harness.ctl("snapshots", "prune", "--db", db, "--keep", "1")
        self.assert_consistent(db)
        left = self.versions(db)
        self.assertEqual([v["version"] for v in left], [newest["version"]])
        self.assertEqual(left[0]["content_hash"], newest["content_hash"])
        self.assertLessEqual(route_rows(), ROUTES + 1 + 1)

    def test_killing_the_proxy_while_it_patches_a_route_edit(self):
        """An API route edit is stored as one route row over the newest version: SIGKILL of the
        proxy at any moment of it leaves the version before or the edited one, whole."""
        db = os.path.join(self.workdir, "edits.db")
        harness.ctl("compile", "--config", self.write_config("edits.textproto", big_config(9001)),
                    "--db", db)
        socket_path = harness.short_socket_path(self, "edits.sock")
        rng = random.Random(2468)
        killed_mid = stored = 0
        for attempt in range(8):
            proxy = self.start_proxy("", workers=1, start_timeout=60,
                                     extra_args=("--db", db, "--admin-socket", socket_path))
            before = self.versions(db)
            add = subprocess.Popen([harness.binary("mcproxyctl"), "--socket", socket_path, "routes",
                                    "add", "--listener", "c", "--hostname", f"p{attempt}.crash.test",
                                    "--backend", "127.0.0.1:9002", "--mode", "l4"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 0.08))
            proxy.proc.send_signal(signal.SIGKILL)
            proxy.proc.wait(30)
            killed_mid += add.wait(30) != 0  # the reply never came
            after = self.versions(db)
            self.assert_consistent(db)
            self.assertIn(len(after) - len(before), (0, 1))
            if len(after) > len(before):
                stored += 1
                self.assertEqual(after[0]["source"], f"api: add route p{attempt}.crash.test")
                self.assertEqual(after[0]["routes"], before[0]["routes"] + 1)
        print(f"route edits: {killed_mid} killed before their reply, {stored} stored", flush=True)
        self.assertGreater(killed_mid, 0, "no edit was killed mid-way; the test proved nothing")

    def test_killing_the_proxy_while_it_seeds(self):
        config = self.write_config("seed.textproto", big_config(9003))
        rng = random.Random(99)
        for attempt in range(6):
            db = os.path.join(self.workdir, f"seed{attempt}.db")
            proc = subprocess.Popen([harness.binary("mc-proxy"), "--db", db, "--config", config,
                                     "--workers", "1"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            if not os.path.exists(db):
                continue  # killed before it created the file
            versions = self.versions(db)
            self.assertIn(len(versions), (0, 1))
            if versions:
                self.assertEqual(versions[0]["routes"], ROUTES)
            self.assert_consistent(db)
            # And the proxy starts from whatever was left.
            # 20,000 routes: seeding (or loading) them takes seconds under ASan on a busy host.
            proxy = self.start_proxy("", extra_args=("--db", db, "--config", config), workers=1,
                                     start_timeout=60)
            self.assertIn("listening on", proxy.log())
            self.assertEqual(proxy.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
