"""Process lifecycle: drain on SIGTERM, drain deadline, reload, config errors, flags."""

import os
import signal
import socket
import subprocess
import time
import unittest

from test.integration import harness


class DrainTest(harness.ProxyTestCase):
    def config(self, backend, drain_ms=15000):
        return f"""
            drain_timeout_ms: {drain_ms}
            listeners {{ name: "dr" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}"""

    def test_sigterm_drains_an_open_connection(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(self.config(backend))
        port = proxy.port()
        ctx = self.certs.client_context()
        with harness.tls_connect(port, "a.test", ctx) as conn:
            conn.sendall(b"before")
            self.assertEqual(conn.recv(6), b"before")
            proxy.proc.send_signal(signal.SIGTERM)
            harness.wait_until(lambda: "draining" in proxy.log(), what="drain to start")
            # New connections are refused...
            harness.wait_until(lambda: self.refused(port), what="listener to close")
            # ...while the open one keeps working.
            time.sleep(0.3)
            self.assertIsNone(proxy.proc.poll())
            conn.sendall(b"during drain")
            self.assertEqual(conn.recv(12), b"during drain")
        self.assertEqual(proxy.proc.wait(10), 0)
        self.assertIn("exited cleanly", proxy.log())
        self.assertIn("stat listener.dr.close.finished 1", proxy.log())

    @staticmethod
    def refused(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    def test_drain_deadline_closes_what_is_left_and_exits_zero(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(self.config(backend, drain_ms=500))
        with harness.tls_connect(proxy.port(), "a.test", self.certs.client_context()) as conn:
            conn.sendall(b"x")
            self.assertEqual(conn.recv(1), b"x")
            started = time.monotonic()
            self.assertEqual(proxy.terminate(), 0)
            self.assertGreaterEqual(time.monotonic() - started, 0.4)
            conn.settimeout(5)
            self.assertEqual(conn.recv(1), b"")
        self.assertIn("stat listener.dr.close.drain_timeout 1", proxy.log())


class ReloadTest(harness.ProxyTestCase):
    def test_sighup_switches_new_connections_and_keeps_open_ones(self):
        backend_a = self.echo_backend(self.cert_a)
        backend_b = self.echo_backend(self.cert_b)
        template = """
            listeners {{ name: "r" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{}" }} }}"""
        proxy = self.start_proxy(template.format(backend_a.address))
        port = proxy.port()
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        with harness.tls_connect(port, "a.test", ctx) as old:
            old.sendall(b"1")
            self.assertEqual(old.recv(1), b"1")
            with open(proxy.config_path, "w") as f:
                f.write(template.format(backend_b.address))
            proxy.proc.send_signal(signal.SIGHUP)
            harness.wait_until(lambda: "reload done" in proxy.log(), what="reload")
            with harness.tls_connect(port, "a.test", ctx) as new:
                new.sendall(b"2")
                self.assertEqual(new.recv(1), b"2")
                subject = dict(x[0] for x in new.getpeercert()["subject"])
                self.assertEqual(subject["commonName"], "b.test")
            old.sendall(b"3")  # still on backend A
            self.assertEqual(old.recv(1), b"3")
        self.assertEqual(backend_a.connections, 1)
        self.assertEqual(backend_b.connections, 1)

    def test_broken_reload_keeps_the_running_config(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            listeners {{ name: "r" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""")
        with open(proxy.config_path, "w") as f:
            f.write('listeners { name: "r" address: "127.0.0.1:0" routes { hostname: "a.test" backend: "nope" } }')
        proxy.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "reload refused" in proxy.log(), what="refusal")
        self.assertIn("listeners[0].routes[0].backend", proxy.log())
        with harness.tls_connect(proxy.port(), "a.test", self.certs.client_context()) as conn:
            conn.sendall(b"ok")
            self.assertEqual(conn.recv(2), b"ok")


class CommandLineTest(harness.ProxyTestCase):
    def run_binary(self, *args, name="mc-proxy"):
        return subprocess.run([harness.binary(name), *args], capture_output=True, text=True,
                              timeout=20)

    def test_config_error_names_the_field_and_exits_non_zero(self):
        path = os.path.join(self.workdir, "broken.textproto")
        with open(path, "w") as f:
            f.write("""listeners { address: "127.0.0.1:0"
                routes { hostname: "a.test" backend: "127.0.0.1:9001" mode: L4 }
                routes { hostname: "b.test" backend: "127.0.0.1:99999" mode: L4 } }""")
        result = self.run_binary("--config", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}: listeners[0].routes[1].backend: port must be a number", result.stderr)
        validated = self.run_binary("validate", "--config", path, name="mcproxyctl")
        self.assertEqual(validated.returncode, 1)
        self.assertIn("listeners[0].routes[1].backend", validated.stderr)

    def test_an_admin_socket_that_cannot_be_bound_exits_one_after_workers_started(self):
        path = os.path.join(self.workdir, "long-socket.textproto")
        with open(path, "w") as f:
            f.write(f"""admin {{ socket: "/tmp/{'x' * 120}/admin.sock" }}
                listeners {{ address: "127.0.0.1:0"
                  routes {{ hostname: "a.test" backend: "127.0.0.1:9001" mode: L4 }} }}""")
        result = self.run_binary("--config", path)
        # Not an abort from a worker thread never joined (std::terminate): a clean exit 1.
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("admin.socket: path longer than 107", result.stderr)
        self.assertNotIn("terminate", result.stderr)

    def test_syntax_error_names_line_and_column(self):
        path = os.path.join(self.workdir, "syntax.textproto")
        with open(path, "w") as f:
            f.write('listeners {\n  adress: "127.0.0.1:0"\n}\n')
        result = self.run_binary("--config", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}:2:", result.stderr)

    def test_json_config_is_accepted(self):
        backend = self.echo_backend(self.cert_a)
        path = os.path.join(self.workdir, "config.json")
        with open(path, "w") as f:
            f.write('{"listeners": [{"name": "j", "address": "127.0.0.1:0", "routes": '
                    f'[{{"hostname": "a.test", "backend": "{backend.address}", "mode": "L4"}}]}}]}}')
        self.assertEqual(self.run_binary("validate", "--config", path, name="mcproxyctl").returncode, 0)

    def test_version_help_and_bad_flags(self):
        self.assertRegex(self.run_binary("--version").stdout, r"^mc-proxy \d+\.\d+\.\d+")
        self.assertIn("--config FILE", self.run_binary("--help").stdout)
        bad = self.run_binary("--workers", "zero")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--workers must be a number", bad.stderr)
        self.assertEqual(self.run_binary("--frobnicate").returncode, 2)

    def test_embedded_default_config_is_valid_and_runs(self):
        printed = self.run_binary("--print-default-config")
        path = os.path.join(self.workdir, "default.textproto")
        with open(path, "w") as f:
            f.write(printed.stdout)
        self.assertEqual(self.run_binary("validate", "--config", path, name="mcproxyctl").returncode, 0)
        proc = subprocess.Popen([harness.binary("mc-proxy"), "--workers", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 10
            lines = []
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                lines.append(line)
                if "started" in line or "error" in line or not line:
                    break
            log = "".join(lines)
            if "Address already in use" in log:
                self.skipTest("127.0.0.1:8443 is taken on this machine")
            self.assertIn("running the embedded default config", log)
            self.assertIn("mc-proxy --config FILE", log)
            self.assertIn("listening on 127.0.0.1:8443", log)
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
