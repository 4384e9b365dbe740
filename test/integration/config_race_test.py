"""No lost update: admin API changes and mcproxyctl compile racing on one database. Every write
is a compare-and-set on the newest version; an API change is made again to whatever version is
newest when it commits (or refused), so nothing is silently overwritten."""

import json
import os
import shutil
import tempfile
import unittest
from concurrent import futures

from test.integration import harness


class ConfigRaceTest(harness.ProxyTestCase):
    def test_api_adds_and_compiles_racing_lose_nothing(self):
        db = os.path.join(self.workdir, "race.db")
        # Under /tmp: Bazel's TEST_TMPDIR is longer than a Unix socket path may be.
        directory = tempfile.mkdtemp(prefix="mcrace", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        sock = os.path.join(directory, "admin.sock")
        base = f"""
            admin {{ socket: "{sock}" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "base.test" backend: "127.0.0.1:9" mode: L4 }}
        """
        self.start_proxy(base + "}", extra_args=("--db", db, "--db-poll-ms", "20"))
        compiles = []
        for i in range(20):
            compiles.append(self.write_config(f"c{i}.textproto", base + f"""
              routes {{ hostname: "compiled-{i}.test" backend: "127.0.0.1:9" mode: L4 }} }}"""))

        def add(i):
            return harness.ctl("--socket", sock, "routes", "add", "--listener", "edge",
                               "--hostname", f"api-{i}.test", "--backend", "127.0.0.1:9",
                               "--mode", "l4", check=False)

        def compile_file(path):
            return harness.ctl("compile", "--config", path, "--db", db, check=False)

        with futures.ThreadPoolExecutor(max_workers=12) as pool:
            adds = [pool.submit(add, i) for i in range(200)]
            compiled = [pool.submit(compile_file, path) for path in compiles]
            adds = [f.result() for f in adds]
            compiled = [f.result() for f in compiled]
        for result in compiled:
            self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        refused = [r for r in adds if r.returncode != 0]
        for result in refused:  # allowed only as a clear refusal that wrote nothing
            self.assertEqual(1, result.returncode, result.stderr)
            self.assertIn("nothing was written", result.stderr)
        self.assertLess(len(refused), 20, "most API changes must get through")

        history = json.loads(harness.ctl("snapshots", "list", "--db", db, "--json").stdout)
        by_version = {entry["version"]: entry for entry in history}
        self.assertEqual(len(by_version), max(by_version))  # no gap
        api_versions = [v for v, e in by_version.items() if e["source"].startswith("api: add")]
        file_versions = [v for v, e in by_version.items()
                         if e["source"] in {"file:" + path for path in compiles}]
        self.assertEqual(200 - len(refused), len(api_versions))
        self.assertEqual(20, len(file_versions))
        # Each API version is its predecessor plus its one route: it undid nothing.
        for version in api_versions:
            hostname = by_version[version]["source"].split()[-1]
            diff = harness.ctl("snapshots", "diff", str(version - 1), str(version),
                               "--db", db).stdout.strip().splitlines()
            self.assertEqual(1, len(diff), (version, diff))
            self.assertTrue(diff[0].startswith("+ route") and hostname in diff[0],
                            (version, diff))
        self.assertIn("ok", harness.ctl("snapshots", "verify", "--db", db).stdout)


if __name__ == "__main__":
    unittest.main()
