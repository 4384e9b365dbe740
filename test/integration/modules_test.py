"""Plugin modules in the real binary: the example C network filter (sni_guard) on L4 traffic and
the example C++ HTTP filter (api_key) on L7 traffic, with their metrics in /metrics; every way a
module is refused (another ABI major or a newer minor, a callback the proxy lacks, a missing
hook, a sha256 mismatch, a config its config_new refuses), each named and changing nothing; a
module file replaced under traffic; and stale or foreign-thread handles answered with errors,
not crashes (the probe module; CI runs this under ASan)."""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

from test.integration import harness
from test.integration.l7_harness import L7TestCase

MODULE_FILTER = "type.googleapis.com/mcproxy.extensions.modules.v1.ModuleFilter"
SNI_GUARD = harness.module_file("examples/modules/libsni_guard.so")
API_KEY = harness.module_file("examples/modules/libapi_key.so")


def module_filter(kind, module, filter_name="f", config=""):
    field = "filters" if kind == "network" else "http_filters"
    return (f'{field} {{ name: "mcproxy.filters.{kind}.module" typed_config {{ [{MODULE_FILTER}] {{ '
            f'module: "{module}" filter_name: "{filter_name}" config: "{config}" }} }} }}')


def network_chain(*middle):
    """The built-in chain with `middle` after tls_inspector (which reads the SNI)."""
    return "\n".join(['filters { name: "mcproxy.filters.network.tls_inspector" }', *middle,
                      'filters { name: "mcproxy.filters.network.router" }',
                      'filters { name: "mcproxy.filters.network.tcp_proxy" }',
                      'filters { name: "mcproxy.filters.network.http_connection_manager" }'])


class ModulesTest(L7TestCase):
    def metrics(self, port):
        return subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/metrics"],
                              capture_output=True, text=True, timeout=20).stdout

    def admin_port(self, proxy):
        return int(re.search(r"admin HTTP .* on 127\.0\.0\.1:(\d+)", proxy.log()).group(1))

    def guarded_l4(self, module_path, patterns="*.b.test"):
        backend = self.echo_backend(self.cert_a)
        config = f"""
            admin {{ http_address: "127.0.0.1:0" }}
            modules {{ name: "sni_guard" path: "{module_path}" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{backend.port}" }}
              routes {{ hostname: "*.b.test" backend: "127.0.0.1:{backend.port}" }}
              {network_chain(module_filter("network", "sni_guard", "guard", patterns))} }}"""
        return config

    def reaches(self, port, sni):
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        try:
            with harness.tls_connect(port, sni, ctx) as tls:
                tls.sendall(b"ping")
                return tls.recv(4) == b"ping"
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return False

    def test_a_c_network_module_guards_sni_on_l4_traffic(self):
        proxy = self.start_proxy(self.guarded_l4(SNI_GUARD))
        port = proxy.port()
        self.assertTrue(self.reaches(port, "a.test"))
        self.assertFalse(self.reaches(port, "x.b.test"))
        self.assertFalse(self.reaches(port, "y.b.test"))
        metrics = self.metrics(self.admin_port(proxy))
        self.assertIn('mcproxy_module_blocked_total{module="sni_guard"} 2', metrics)
        self.assertIn('mcproxy_module_allowed_total{module="sni_guard"} 1', metrics)
        self.assertIn('mcproxy_listener_closes_total{listener="edge",reason="module"} 2', metrics)

    def test_a_cpp_http_module_checks_keys_answers_401_and_resumes_from_a_timer(self):
        backend = self.http1_backend(name="web")
        proxy = self.start_proxy(f"""
            admin {{ http_address: "127.0.0.1:0" }}
            access_log {{ path: "-" format: TEXT text_format: "LOG %PATH% %STATUS% %CLOSE_REASON%" }}
            modules {{ name: "api_key" path: "{API_KEY}" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a,
                             "backend_protocol: HTTP1 " +
                             module_filter("http", "api_key", "check", "keys=alpha,beta delay_ms=150") +
                             ' http_filters { name: "mcproxy.filters.http.router" }')} }}""")
        port = proxy.port()
        for version in ("--http2", "--http1.1"):
            code, body, meta, err = self.curl(port, "/none", "a.test", version)
            self.assertEqual(meta.split()[0], "401", err)
            self.assertEqual(body, b"X-Api-Key required\n")
            code, body, meta, err = self.curl(port, "/bad", "a.test", version, "-H", "x-api-key: nope")
            self.assertEqual(meta.split()[0], "401", err)
            started = time.monotonic()
            code, body, meta, err = self.curl(port, "/headers", "a.test", version, "-i",
                                              "-H", "x-api-key: beta")
            self.assertEqual(meta.split()[0], "200", err)
            self.assertGreaterEqual(time.monotonic() - started, 0.15)  # held by the timer
            self.assertIn(b"x-api-key-verified: beta", body.lower())
            self.assertIn(b"backend=web", body)
        self.assertEqual(len(backend.requests), 2)  # only the verified ones reached it
        metrics = self.metrics(self.admin_port(proxy))
        self.assertIn('mcproxy_module_accepted_total{module="api_key"} 2', metrics)
        self.assertIn('mcproxy_module_rejected_total{module="api_key"} 4', metrics)
        harness.wait_until(lambda: "LOG /bad 401 api_key: rejected" in proxy.log(),
                           what="the local reply's detail in the access log")

    def test_the_examples_build_out_of_tree_with_a_plain_compiler(self):
        root = harness.module_file("")
        out = os.path.join(self.workdir, f"oot-{time.monotonic_ns()}")
        os.makedirs(out)
        for compiler, source, name in (
                (["cc"], "examples/modules/sni_guard/sni_guard.c", "libsni_guard.so"),
                (["c++", "-std=c++17"], "examples/modules/api_key/api_key.cc", "libapi_key.so")):
            result = subprocess.run(
                [*compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I",
                 os.path.join(root, "include"), os.path.join(root, source), "-o",
                 os.path.join(out, name)], capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stderr)
        proxy = self.start_proxy(self.guarded_l4(os.path.join(out, "libsni_guard.so")))
        self.assertTrue(self.reaches(proxy.port(), "a.test"))
        self.assertFalse(self.reaches(proxy.port(), "x.b.test"))
        result = self.validate(f"""
            modules {{ name: "api_key" path: "{os.path.join(out, 'libapi_key.so')}" }}
            listeners {{ address: "127.0.0.1:0"
              {self.l7_route("a.test", "127.0.0.1:1", self.cert_a,
                             module_filter("http", "api_key", "check", "keys=a") +
                             ' http_filters { name: "mcproxy.filters.http.router" }')} }}""")
        self.assertEqual(result.returncode, 0, result.stderr)

    def validate(self, config):
        return harness.ctl("validate", "--config", self.write_config(
            f"m-{time.monotonic_ns()}.textproto", config), check=False)

    def test_every_way_a_module_is_refused_names_it(self):
        def config(path, kind="http", name="m", extra=""):
            route_filters = (module_filter("http", name, "f", "keys=a") +
                             ' http_filters { name: "mcproxy.filters.http.router" }'
                             if kind == "http" else "")
            return f"""
                modules {{ name: "{name}" path: "{path}" {extra} }}
                listeners {{ address: "127.0.0.1:0"
                  {self.l7_route("a.test", "127.0.0.1:1", self.cert_a, route_filters)}
                  {network_chain(module_filter("network", name, "f", "x")) if kind == "network" else ""} }}"""

        cases = [
            (config(harness.module_file("test/modules/libabi_major.so")),
             ["modules[0].path: ", "built for module ABI 2.0.0, this mc-proxy has ABI 1.0.0"]),
            (config(harness.module_file("test/modules/libabi_minor.so")),
             ["modules[0].path: ", "built for module ABI 1.99.0"]),
            (config(harness.module_file("test/modules/libunknown_callback.so")),
             ["modules[0].path: cannot load ", "mcproxy_callback_from_the_future"]),
            (config(API_KEY, kind="network"),
             ["listeners[0].filters[1].module: ", "has no mcproxy_network_filter_config_new"]),
            (config(API_KEY, extra=f'sha256: "{"0" * 64}"'),
             ["modules[0].sha256: ", "sha256 is " + hashlib.sha256(open(API_KEY, "rb").read()).hexdigest()]),
            (config(API_KEY).replace("keys=a", "bogus=1"),
             ["http_filters[0].config: ", 'refused the config of filter "f": unknown setting "bogus"']),
            (config("/nonexistent/lib.so"), ["modules[0].path: /nonexistent/lib.so: No such file"]),
            (config(API_KEY, name="Bad-Name"), ["modules[0].name: "]),
        ]
        for text, expected in cases:
            result = self.validate(text)
            self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
            for part in expected:
                self.assertIn(part, result.stderr, text)

    def test_a_refused_module_change_keeps_the_running_config(self):
        path = os.path.join(self.workdir, f"guard-{time.monotonic_ns()}.so")
        shutil.copy(SNI_GUARD, path)
        config = self.guarded_l4(path)
        proxy = self.start_proxy(config)
        port = proxy.port()
        self.assertFalse(self.reaches(port, "x.b.test"))
        # A change whose module refuses its config (no patterns) is refused as a whole.
        with open(proxy.config_path, "w") as f:
            f.write(config.replace('config: "*.b.test"', 'config: ""'))
        proxy.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "refused the config" in proxy.log(), what="the refusal")
        self.assertFalse(self.reaches(port, "x.b.test"))  # the old guard still runs
        self.assertTrue(self.reaches(port, "a.test"))
        failures = self.metrics(self.admin_port(proxy))
        self.assertIn('mcproxy_module_blocked_total{module="sni_guard"} 2', failures)

    def test_replacing_a_module_file_under_traffic_loses_no_connection(self):
        path = os.path.join(self.workdir, f"guard-{time.monotonic_ns()}.so")
        shutil.copy(SNI_GUARD, path)
        proxy = self.start_proxy(self.guarded_l4(path))
        port = proxy.port()
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        held = harness.tls_connect(port, "a.test", ctx)  # open across the replacement
        self.addCleanup(held.close)
        held.sendall(b"one")
        self.assertEqual(held.recv(3), b"one")
        # A new file at the same path (another inode), as a package upgrade writes it.
        fresh = path + ".new"
        shutil.copy(SNI_GUARD, fresh)
        os.rename(fresh, path)
        harness.wait_until(lambda: proxy.log().count("module sni_guard loaded") >= 2,
                           timeout=20, what="the replaced module loaded")
        held.sendall(b"two")
        self.assertEqual(held.recv(3), b"two")  # the old snapshot's module still serves it
        self.assertTrue(self.reaches(port, "a.test"))
        self.assertFalse(self.reaches(port, "x.b.test"))

    def test_stale_and_foreign_thread_handles_get_errors_not_crashes(self):
        backend = self.http1_backend(name="web")
        probe = harness.module_file("test/modules/libprobe.so")
        proxy = self.start_proxy(f"""
            admin {{ http_address: "127.0.0.1:0" }}
            modules {{ name: "probe" path: "{probe}" }}
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a,
                             "backend_protocol: HTTP1 " + module_filter("http", "probe") +
                             ' http_filters { name: "mcproxy.filters.http.router" }')}
              {network_chain(module_filter("network", "probe"))} }}""", workers=1)
        port = proxy.port()
        for _ in range(3):
            code, body, meta, err = self.curl(port, "/", "a.test", "--http2")
            self.assertEqual(meta.split()[0], "200", err)
        metrics = self.metrics(self.admin_port(proxy))
        # 3 connections, 3 requests: each filter after the first of its kind found its
        # predecessor's handle stale, and each tried a callback from another thread.
        ended = int(re.search(r'mcproxy_module_stale_handle_ended_total\{module="probe"\} (\d+)',
                              metrics).group(1))
        wrong = int(re.search(r'mcproxy_module_wrong_thread_total\{module="probe"\} (\d+)',
                              metrics).group(1))
        self.assertEqual(ended, 2 + 2)  # requests 2-3, connections 2-3
        self.assertEqual(wrong, 3 + 3)
        self.assertIn('mcproxy_module_unexpected_total{module="probe"} 0', metrics)
        self.assertIn('mcproxy_module_live_filters{module="probe"} 0', metrics)
        self.assertIn('mcproxy_module_probe_seconds_count{module="probe"} 3', metrics)
        self.assertIsNone(proxy.proc.poll())


if __name__ == "__main__":
    unittest.main()
