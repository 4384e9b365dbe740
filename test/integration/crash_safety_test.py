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
