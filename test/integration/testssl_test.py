"""A third-party TLS scan (issue 15): testssl.sh (Debian's) against an L7 listener finds no
vulnerability, only the protocols the listener's policy allows, and the OCSP response the route
staples."""

import json
import os
import subprocess
import unittest

from test.integration import harness
from test.integration import l7_harness

# testssl.sh's ids for its vulnerability checks (-U).
VULNERABILITIES = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                   "secure_client_renego", "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV",
                   "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4")


class TestsslTest(l7_harness.L7TestCase):
    def start(self, listener_extra=""):
        backend = self.http1_backend()
        # testssl.sh sends some probes without SNI: a default route answers them like a.test.
        chain = self.write_config("a-chain.crt", open(self.cert_a[0]).read() +
                                  open(self.certs.ca_cert).read())
        ocsp_path = os.path.join(self.workdir, "a.ocsp")
        with open(ocsp_path, "wb") as f:
            f.write(l7_harness.Pki(self.workdir, "", self.certs.ca_key, self.certs.ca_cert).ocsp_response(
                self.cert_a[0], l7_harness.NOW - l7_harness.DAY,
                l7_harness.NOW + l7_harness.DAY))
        route = (f'backend: "{backend.address}" mode: L7 backend_protocol: HTTP1 '
                 f'tls_cert: "{chain}" tls_key: "{self.cert_a[1]}" ocsp_response: "{ocsp_path}"')
        return self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0" {listener_extra}
              routes {{ hostname: "a.test" {route} }}
              default_route {{ {route} }} }}""")

    def scan(self, port, *checks):
        """testssl.sh's findings by id (its JSON output) for `checks` (-p, -U, -S)."""
        out = os.path.join(self.workdir, f"testssl-{port}.json")
        result = subprocess.run(
            ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--jsonfile",
             out, "--ip", "127.0.0.1", *checks, f"https://a.test:{port}"],
            capture_output=True, timeout=600, text=True)
        self.assertTrue(os.path.exists(out), result.stdout + result.stderr)
        with open(out) as f:
            return {finding["id"]: finding for finding in json.load(f)}

    def test_scan_finds_no_vulnerability_only_tls12_and_13_and_the_staple(self):
        proxy = self.start()
        findings = self.scan(proxy.port(), "-p", "-U", "-S")
        for protocol in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertTrue(findings[protocol]["finding"].startswith("not offered"),
                            findings[protocol])
        for protocol in ("TLS1_2", "TLS1_3"):
            self.assertTrue(findings[protocol]["finding"].startswith("offered"), findings[protocol])
        for check in VULNERABILITIES:
            with self.subTest(check=check):
                self.assertIn(check, findings)
                self.assertIn(findings[check]["severity"], ("OK", "INFO"), findings[check])
        self.assertEqual("offered", findings["OCSP_stapling"]["finding"])
        self.assertEqual("OK", findings["OCSP_stapling"]["severity"])

    def test_scan_sees_only_what_a_tighter_policy_offers(self):
        proxy = self.start("tls { min_version: TLSv1_3 }")
        findings = self.scan(proxy.port(), "-p")
        self.assertTrue(findings["TLS1_2"]["finding"].startswith("not offered"), findings["TLS1_2"])
        self.assertTrue(findings["TLS1_3"]["finding"].startswith("offered"), findings["TLS1_3"])


if __name__ == "__main__":
    unittest.main()
