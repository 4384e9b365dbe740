"""mcproxyctl check: operators' route tests, evaluated offline by the proxy's own filters, with
coverage, JUnit XML and the exit codes CI reads; and validate --strict."""

import json
import os
import socket
import subprocess
import unittest
import xml.etree.ElementTree as ElementTree

from test.integration import harness


class CheckTest(harness.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cert = cls.certs.leaf("api.example.com", ["api.example.com", "www.example.com"])

    def config(self, geoip_db="/nonexistent/country.mmdb"):
        cert, key = self.cert
        return f"""
            firewall {{ blocked_cidrs: "198.51.100.0/24" blocked_ips: "192.0.2.66" }}
            listeners {{
              name: "edge" address: "127.0.0.1:8443"
              # Never opened by check: the test names the client's country.
              firewall {{ blocked_countries: "KP" geoip_db: "{geoip_db}"
                         rate_limit {{ connections: 3 per_seconds: 60 }} }}
              routes {{ hostname: "api.example.com" backend: "10.0.0.5:8443" mode: L7
                       backend_tls: true send_proxy_protocol: true
                       tls_cert: "{cert}" tls_key: "{key}"
                       http_routes {{ path_prefix: "/v2/" backend: "10.0.0.6:8443" }} }}
              routes {{ hostname: "*.pass.example.com" backend: "10.0.1.1:443" mode: L4 }}
            }}
            listeners {{
              name: "origin" address: "127.0.0.1:9443" proxy_protocol: true
              trusted_sources: "10.9.0.0/16"
              routes {{ hostname: "www.example.com" backend: "10.0.2.2:80" mode: L7
                       backend_protocol: HTTP1 tls_cert: "{cert}" tls_key: "{key}" }}
            }}"""

    PASSING = """
        tests {
          name: "api from a customer"
          input { listener: "edge" sni: "api.example.com" source_ip: "203.0.113.9" country: "NL"
                  method: "GET" path: "/v1/users" headers { name: "x-api-key" value: "k" } }
          expect { verdict: ALLOW route: "api.example.com" mode: L7 backend: "10.0.0.5:8443"
                   backend_tls: true sends_proxy_protocol: true
                   request_headers { name: "x-real-ip" value: "203.0.113.9" }
                   request_headers { name: "x-api-key" value: "k" } }
        }
        tests { name: "v2 goes to its own backend"
                input { listener: "edge" sni: "api.example.com" source_ip: "203.0.113.9"
                        path: "/v2/orders" }
                expect { verdict: ALLOW backend: "10.0.0.6:8443" } }
        tests { name: "blocked net" input { listener: "edge" sni: "api.example.com"
                                            source_ip: "198.51.100.7" }
                expect { verdict: DENY deny_reason: "firewall_cidr" } }
        tests { name: "blocked address" input { listener: "edge" sni: "api.example.com"
                                                source_ip: "192.0.2.66" }
                expect { verdict: DENY deny_reason: "firewall_blocked_ip" } }
        tests { name: "blocked country" input { listener: "edge" sni: "api.example.com"
                                                source_ip: "203.0.113.10" country: "KP" }
                expect { verdict: DENY deny_reason: "firewall_country" } }
        tests { name: "the fourth connection in a minute"
                input { listener: "edge" sni: "a.pass.example.com" source_ip: "203.0.113.11"
                        earlier_connections: 3 }
                expect { verdict: DENY deny_reason: "firewall_rate_limited" } }
        tests { name: "the third connection in a minute"
                input { listener: "edge" sni: "a.pass.example.com" source_ip: "203.0.113.11"
                        earlier_connections: 2 }
                expect { verdict: ALLOW route: "*.pass.example.com" mode: L4
                         backend: "10.0.1.1:443" } }
        tests { name: "another name on this connection"
                input { listener: "edge" sni: "api.example.com" authority: "www.example.com"
                        source_ip: "203.0.113.9" }
                expect { verdict: DENY deny_reason: "misdirected" status: 421 } }
        tests { name: "origin behind the edge"
                input { listener: "origin" sni: "www.example.com" source_ip: "10.9.1.1"
                        proxy_source_ip: "203.0.113.9" }
                expect { verdict: ALLOW route: "www.example.com"
                         request_headers { name: "x-forwarded-for" value: "203.0.113.9" }
                         absent_request_headers: "expect" } }
        tests { name: "PROXY from outside the trusted tier"
                input { listener: "origin" sni: "www.example.com" source_ip: "10.8.1.1"
                        proxy_source_ip: "203.0.113.9" }
                expect { verdict: DENY deny_reason: "proxy_protocol_untrusted_source" } }
        tests { name: "unknown name" input { listener: "edge" sni: "nope.example.com"
                                             source_ip: "203.0.113.9" }
                expect { verdict: DENY deny_reason: "no_route" } }
    """

    def write(self, name, text):
        return self.write_config(name, text)

    def check(self, *args):
        return harness.ctl("check", *args, check=False)

    def test_passing_tests_cover_every_route_and_rule(self):
        config = self.write("edge.textproto", self.config())
        tests = self.write("tests.textproto", self.PASSING)
        junit = os.path.join(self.workdir, "junit.xml")
        result = self.check("--config", config, "--tests", tests, "--fail-under", "100",
                            "--junit", junit)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertIn("11 test(s): 11 passed, 0 failed", result.stdout)
        self.assertIn("coverage: 8 of 8", result.stdout)
        suite = ElementTree.parse(junit).getroot().find("testsuite")
        self.assertEqual(("11", "0", "0"), (suite.get("tests"), suite.get("failures"),
                                            suite.get("errors")))

    def test_routes_to_clusters_report_the_cluster_as_their_backend(self):
        cert, key = self.cert
        config = self.write("clusters.textproto", f"""
            clusters {{ name: "api" backend_tls: true
                        endpoints {{ address: "10.0.0.5:8443" }} endpoints {{ address: "10.0.0.7:8443" }} }}
            listeners {{ name: "edge" address: "127.0.0.1:8443"
              routes {{ hostname: "pass.example.com" cluster: "api" }}
              routes {{ hostname: "api.example.com" backend: "10.0.0.9:80" mode: L7
                       tls_cert: "{cert}" tls_key: "{key}"
                       http_routes {{ path_prefix: "/v2/" cluster: "api" }} }} }}""")
        tests = self.write("cluster-tests.textproto", """
            tests { name: "passthrough to the cluster"
                    input { listener: "edge" sni: "pass.example.com" source_ip: "203.0.113.9" }
                    expect { verdict: ALLOW mode: L4 backend: "cluster api" } }
            tests { name: "v2 to the cluster"
                    input { listener: "edge" sni: "api.example.com" source_ip: "203.0.113.9"
                            path: "/v2/x" }
                    expect { verdict: ALLOW backend: "cluster api" } }
            tests { name: "the rest to the backend"
                    input { listener: "edge" sni: "api.example.com" source_ip: "203.0.113.9"
                            path: "/x" }
                    expect { verdict: ALLOW backend: "10.0.0.9:80" } }""")
        result = self.check("--config", config, "--tests", tests, "--fail-under", "100")
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertIn("3 test(s): 3 passed, 0 failed", result.stdout)

    def test_a_failure_names_the_test_the_field_and_both_values(self):
        config = self.write("edge.textproto", self.config())
        tests = self.write("wrong.textproto", """
            tests { name: "api goes to the new backend"
                    input { listener: "edge" sni: "api.example.com" source_ip: "203.0.113.9" }
                    expect { verdict: ALLOW backend: "10.0.0.7:8443"
                             request_headers { name: "x-real-ip" value: "1.2.3.4" } } }
            tests { name: "no listener" input { listener: "core" sni: "a" source_ip: "1.2.3.4" }
                    expect { verdict: ALLOW } }""")
        junit = os.path.join(self.workdir, "junit-wrong.xml")
        result = self.check("--config", config, "--tests", tests, "--junit", junit)
        self.assertEqual(1, result.returncode, result.stdout + result.stderr)
        self.assertIn('FAIL "api goes to the new backend": expected: [10.0.0.7:8443], '
                      'actual: [10.0.0.5:8443], field: backend', result.stdout)
        self.assertIn("expected: [1.2.3.4], actual: [203.0.113.9], "
                      "field: request_headers[x-real-ip]", result.stdout)
        self.assertIn('ERROR "no listener": input.listener: no listener "core"', result.stdout)
        self.assertIn("untested: route origin www.example.com", result.stdout)
        suite = ElementTree.parse(junit).getroot().find("testsuite")
        self.assertEqual(("1", "1"), (suite.get("failures"), suite.get("errors")))

    def test_coverage_under_the_bar_fails(self):
        config = self.write("edge.textproto", self.config())
        tests = self.write("one.json", json.dumps({"tests": [{
            "name": "passthrough",
            "input": {"listener": "edge", "sni": "x.pass.example.com", "source_ip": "203.0.113.1"},
            "expect": {"verdict": "ALLOW", "mode": "L4"}}]}))
        result = self.check("--config", config, "--tests", tests)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        result = self.check("--config", config, "--tests", tests, "--fail-under", "50")
        self.assertEqual(1, result.returncode)
        self.assertIn("coverage 12.5% is under --fail-under 50%", result.stdout)

    def test_a_stored_version_is_checked_like_a_file(self):
        db = os.path.join(self.workdir, "check.db")
        # compile opens the GeoIP database (the proxy will run on it); check never does.
        mmdb = os.path.join(self.workdir, "countries.mmdb")
        subprocess.run(["perl", os.path.join(os.environ["TEST_SRCDIR"], "mcproxy", "test",
                                             "integration", "make_test_mmdb.pl"), mmdb,
                        "203.0.113.0/24=NL"], check=True, capture_output=True)
        harness.ctl("compile", "--config", self.write("v1.textproto", self.config(mmdb)),
                    "--db", db)
        tests = self.write("tests.textproto", self.PASSING)
        result = self.check("--db", db, "--tests", tests)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        result = self.check("--db", db, "--version", "1", "--tests", tests)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)

    def test_exit_codes_for_usage_and_unreadable_inputs(self):
        config = self.write("edge.textproto", self.config())
        tests = self.write("tests.textproto", self.PASSING)
        self.assertEqual(2, self.check("--tests", tests).returncode)
        self.assertEqual(2, self.check("--config", config).returncode)
        result = self.check("--config", config, "--tests", self.write("bad.textproto",
                                                                      'tests { nme: "x" }'))
        self.assertEqual(3, result.returncode)
        self.assertIn("bad.textproto:1:", result.stderr)
        broken = self.write("broken.textproto", self.config().replace('backend: "10.0.1.1:443"',
                                                                      'backend: "10.0.1.1"'))
        result = self.check("--config", broken, "--tests", tests)
        self.assertEqual(3, result.returncode)
        self.assertIn("listeners[0].routes[1].backend", result.stderr)
        result = self.check("--db", os.path.join(self.workdir, "missing", "x.db"), "--tests", tests)
        self.assertEqual(3, result.returncode)

    def test_it_binds_no_socket_and_opens_no_connection(self):
        config = self.write("edge.textproto", self.config())
        tests = self.write("tests.textproto", self.PASSING)
        trace = os.path.join(self.workdir, "strace.out")
        result = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=socket,bind,connect,listen", "-o", trace,
             harness.binary("mcproxyctl"), "check", "--config", config, "--tests", tests],
            capture_output=True, text=True, timeout=60,
            # LeakSanitizer cannot run under ptrace (the ASan build); other tests cover leaks.
            env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        with open(trace) as f:
            calls = [line for line in f if "socket(" in line or "bind(" in line or
                     "connect(" in line or "listen(" in line]
        self.assertEqual([], calls)

    def test_verdicts_match_the_running_proxy(self):
        """The same config, run: what check says of a client is what the proxy does to it."""
        backend = self.echo_backend(self.cert)
        cert, key = self.cert
        config_text = f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              firewall {{ blocked_cidrs: "127.0.0.2/32" }}
              routes {{ hostname: "*.pass.example.com" backend: "127.0.0.1:{backend.port}"
                       mode: L4 }} }}"""
        tests = self.write("live.textproto", """
            tests { name: "allowed" input { sni: "x.pass.example.com" source_ip: "127.0.0.1" }
                    expect { verdict: ALLOW } }
            tests { name: "refused" input { sni: "x.pass.example.com" source_ip: "127.0.0.2" }
                    expect { verdict: DENY deny_reason: "firewall_cidr" } }
            tests { name: "no route" input { sni: "nope.test" source_ip: "127.0.0.1" }
                    expect { verdict: DENY deny_reason: "no_route" } }""")
        result = self.check("--config", self.write("live-config.textproto", config_text),
                            "--tests", tests)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        proxy = self.start_proxy(config_text)
        context = self.certs.client_context()
        context.check_hostname = False
        with harness.tls_connect(proxy.port(), "x.pass.example.com", context) as tls:
            tls.sendall(b"ping\n")
            self.assertEqual("ping\n", harness.read_line(tls))
        for source, sni in (("127.0.0.2", "x.pass.example.com"), ("127.0.0.1", "nope.test")):
            raw = socket.create_connection(("127.0.0.1", proxy.port()), timeout=10,
                                           source_address=(source, 0))
            raw.sendall(harness.client_hello(sni))
            self.assertTrue(harness.closed_by_peer(raw))
            raw.close()
        stats = proxy.stats()
        self.assertEqual(1, stats.get("listener.edge.close.firewall_blocked_cidr"))
        self.assertEqual(1, stats.get("listener.edge.close.no_route"))


class ValidateStrictTest(harness.ProxyTestCase):
    def test_warnings_fail_only_with_strict(self):
        config = self.write_config("warn.textproto", """
            listeners { address: "127.0.0.1:0"
              routes { hostname: "a.test" backend: "127.0.0.1:9" mode: L4 backend_tls: true } }""")
        result = harness.ctl("validate", "--config", config, check=False)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn("backend_tls: ignored on an L4 route", result.stderr)
        result = harness.ctl("validate", "--config", config, "--strict", check=False)
        self.assertEqual(1, result.returncode)
        self.assertIn("1 warning(s); --strict fails on any", result.stderr)
        clean = self.write_config("clean.textproto", """
            listeners { address: "127.0.0.1:0"
              routes { hostname: "a.test" backend: "127.0.0.1:9" mode: L4 } }""")
        self.assertEqual(0, harness.ctl("validate", "--config", clean, "--strict",
                                        check=False).returncode)


if __name__ == "__main__":
    unittest.main()
