"""TLS on L7 routes beyond the built-in policy (issue 15): a listener's TLS policy (versions,
cipher suites, groups), downstream mutual TLS (client_ca, client_cert REQUIRED | OPTIONAL,
failures counted by reason, x-forwarded-client-cert to the backend and into the access log),
OCSP stapling from a watched file, and session tickets that resume on every worker and across a
renewed certificate. Peers: Python's ssl, openssl s_client, curl; certificates and OCSP
responses made with python3-cryptography."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from test.integration import harness
from test.integration import l7_harness

NOW = l7_harness.NOW
DAY = l7_harness.DAY
Pki = l7_harness.Pki


def s_client(port, *args, host="a.test"):
    """openssl s_client's output (stdout and stderr) for one handshake with `args`."""
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                             "-servername", host, *args], input=b"", capture_output=True,
                            timeout=30)
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def https_get(port, ctx, path="/headers", host="a.test", session=None, headers=""):
    """(status line, body, ssl session, whether it was resumed) of one HTTP/1.1 request."""
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=host, session=session) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
                    "Connection: close\r\n\r\n".encode())
        data = harness.read_until_closed(tls)
        head, _, body = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), body, tls.session, tls.session_reused


class TlsPolicyTest(l7_harness.L7TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.client_ca = Pki(cls.workdir, "client-ca")
        cls.other_ca = Pki(cls.workdir, "other-ca")
        cls.server_ca = Pki(cls.workdir, "", cls.certs.ca_key, cls.certs.ca_cert)
        cls.good_client = cls.client_ca.client("client-1", dns=["client-1.test"],
                                               uris=["spiffe://test/client-1"])
        cls.expired_client = cls.client_ca.client("client-old", not_before=NOW - 3 * DAY,
                                                  not_after=NOW - DAY)
        cls.stranger = cls.other_ca.client("stranger")

    def start(self, route_extra="", listener_extra="", workers=2, cert_key=None, **kwargs):
        backend = self.http1_backend()
        log = os.path.join(self.workdir, f"access-{id(backend)}.log")
        proxy = self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0" {listener_extra}
              access_log {{ path: "{log}" }}
              {self.l7_route("a.test", backend.address, cert_key or self.cert_a,
                             "backend_protocol: HTTP1 " + route_extra)}
              {self.l7_route("b.test", backend.address, self.cert_b, "backend_protocol: HTTP1")} }}""",
                                 workers=workers, **kwargs)
        return proxy, backend, log

    def failures(self, proxy, reason):
        return proxy.stats().get(f"listener.edge.tls.handshake_failures.{reason}", 0)

    # --- TLS policy -------------------------------------------------------------------------

    def test_minimum_version_tls13_refuses_tls12_clients(self):
        proxy, _, _ = self.start(listener_extra="tls { min_version: TLSv1_3 }")
        out = s_client(proxy.port(), "-tls1_2")
        self.assertIn("Cipher is (NONE)", out)
        self.assertIn("alert protocol version", out)
        self.assertIn("New, TLSv1.3", s_client(proxy.port(), "-tls1_3"))
        harness.wait_until(lambda: self.failures(proxy, "no_shared_version") == 1,
                           what="the refused TLS 1.2 client counted")

    def test_version_cipher_and_group_chosen_by_the_policy(self):
        proxy, _, _ = self.start(listener_extra="""tls { max_version: TLSv1_2
            cipher_suites: "ECDHE-ECDSA-AES256-GCM-SHA384" groups: "P-384" }""")
        out = s_client(proxy.port())
        self.assertIn("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384", out)
        self.assertIn("Server Temp Key: ECDH, secp384r1", out)
        # A client with only another cipher, or only another group, gets no handshake.
        out = s_client(proxy.port(), "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertIn("Cipher is (NONE)", out)
        out = s_client(proxy.port(), "-groups", "X25519")
        self.assertIn("Cipher is (NONE)", out)
        harness.wait_until(lambda: self.failures(proxy, "no_shared_cipher") == 2,
                           what="both refusals counted as no_shared_cipher")

    def test_a_looser_policy_lets_tls10_clients_in(self):
        proxy, _, _ = self.start(listener_extra="""tls { min_version: TLSv1_0
            cipher_suites: "ECDHE-ECDSA-AES128-SHA" cipher_suites: "ECDHE-ECDSA-AES128-GCM-SHA256" }""")
        out = s_client(proxy.port(), "-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        self.assertIn("New, TLSv1.0, Cipher is ECDHE-ECDSA-AES128-SHA", out)
        self.assertIn("TLS 1.0 and 1.1 are deprecated", proxy.log())
        # The built-in proxy still refuses TLS 1.0.
        proxy2, _, _ = self.start()
        out = s_client(proxy2.port(), "-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        self.assertIn("Cipher is (NONE)", out)

    def test_broken_policies_name_the_field(self):
        cert, key = self.cert_a
        cases = [
            ('tls { cipher_suites: "ECDHE-ECDSA-AES128-GCM-SHA256" cipher_suites: "NOPE-CIPHER" }',
             "listeners[0].tls.cipher_suites[1]", "NOPE-CIPHER"),
            ('tls { groups: "X25519" groups: "P-999" }', "listeners[0].tls.groups[1]", "P-999"),
            ("tls { min_version: TLSv1_3 max_version: TLSv1_2 }", "listeners[0].tls.max_version",
             "below min_version"),
            ('tls { cipher_suites: "TLS_AES_128_GCM_SHA256" }', "listeners[0].tls.cipher_suites",
             "only TLS 1.3 suites"),
        ]
        for listener_extra, field, words in cases:
            with self.subTest(field=field):
                path = self.write_config("broken.textproto", f"""
                    listeners {{ address: "127.0.0.1:0" {listener_extra}
                      routes {{ hostname: "a.test" backend: "127.0.0.1:1" mode: L7
                               tls_cert: "{cert}" tls_key: "{key}" }} }}""")
                result = harness.ctl("validate", "--config", path, check=False)
                self.assertNotEqual(0, result.returncode)
                self.assertIn(field, result.stderr + result.stdout)
                self.assertIn(words, result.stderr + result.stdout)

    # --- mutual TLS -------------------------------------------------------------------------

    def mtls_context(self, cert_key=None):
        ctx = self.certs.client_context()
        if cert_key:
            ctx.load_cert_chain(*cert_key)
        return ctx

    def test_required_client_certificate(self):
        proxy, backend, log = self.start(
            route_extra=f'client_ca: "{self.client_ca.cert_path}" client_cert: REQUIRED')
        status, body, _, _ = https_get(proxy.port(), self.mtls_context(self.good_client),
                                       headers="X-Forwarded-Client-Cert: Hash=forged\r\n")
        self.assertEqual("HTTP/1.1 200 OK", status)
        xfcc = [line for line in body.decode().splitlines()
                if line.startswith("x-forwarded-client-cert: ")]
        self.assertEqual(1, len(xfcc), body)  # the client's forged one is gone
        with open(self.good_client[0], "rb") as f:
            der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
        self.assertEqual(
            "x-forwarded-client-cert: Hash=" + harness.sha256(der) +
            ';Subject="O=Test\\\\, Inc,CN=client-1";URI=spiffe://test/client-1;DNS=client-1.test',
            xfcc[0])
        # No certificate, one from another CA, an expired one: no handshake, each counted.
        for cert_key, reason in ((None, "client_cert_missing"), (self.stranger, "client_cert_untrusted"),
                                 (self.expired_client, "client_cert_expired")):
            with self.subTest(reason=reason):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    status, _, _, _ = https_get(proxy.port(), self.mtls_context(cert_key))
                    if not status:
                        raise ConnectionError("closed")
                harness.wait_until(lambda: self.failures(proxy, reason) == 1, what=reason)
        self.assertEqual(1, len(backend.requests))
        # The access log names the client.
        harness.wait_until(lambda: os.path.exists(log) and "client_cert_subject" in open(log).read(),
                           what="the access log line")
        lines = [json.loads(line) for line in open(log) if '"method"' in line]
        self.assertEqual("O=Test\\, Inc,CN=client-1", lines[0]["client_cert_subject"])
        self.assertEqual(harness.sha256(der), lines[0]["client_cert_sha256"])

    def test_optional_client_certificate(self):
        proxy, backend, _ = self.start(
            route_extra=f'client_ca: "{self.client_ca.cert_path}" client_cert: OPTIONAL')
        status, body, _, _ = https_get(proxy.port(), self.mtls_context(),
                                       headers="X-Forwarded-Client-Cert: Hash=forged\r\n")
        self.assertEqual("HTTP/1.1 200 OK", status)
        self.assertNotIn(b"x-forwarded-client-cert", body)
        status, body, _, _ = https_get(proxy.port(), self.mtls_context(self.good_client))
        self.assertIn(b"x-forwarded-client-cert: Hash=", body)
        # A certificate that does not verify is refused even when optional.
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            status, _, _, _ = https_get(proxy.port(), self.mtls_context(self.stranger))
            if not status:
                raise ConnectionError("closed")
        # A route without mutual TLS strips the header too.
        status, body, _, _ = https_get(proxy.port(), self.mtls_context(), host="b.test",
                                       headers="X-Forwarded-Client-Cert: Hash=forged\r\n")
        self.assertNotIn(b"x-forwarded-client-cert", body)

    def test_client_cert_without_client_ca_is_a_config_error(self):
        cert, key = self.cert_a
        path = self.write_config("nomtls.textproto", f"""
            listeners {{ address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:1" mode: L7 client_cert: OPTIONAL
                       tls_cert: "{cert}" tls_key: "{key}" }} }}""")
        result = harness.ctl("validate", "--config", path, check=False)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("listeners[0].routes[0].client_cert", result.stderr + result.stdout)

    # --- OCSP stapling ----------------------------------------------------------------------

    def test_ocsp_response_is_stapled_and_follows_its_file(self):
        ocsp_path = os.path.join(self.workdir, "a.ocsp")
        with open(ocsp_path, "wb") as f:
            f.write(self.server_ca.ocsp_response(self.cert_a[0], NOW - DAY, NOW + DAY))
        proxy, _, _ = self.start(route_extra=f'ocsp_response: "{ocsp_path}"',
                                 extra_args=("--db-poll-ms", "100"))
        out = s_client(proxy.port(), "-status")
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        # An expired response replaces it: not stapled, and said so.
        with open(ocsp_path + ".new", "wb") as f:
            f.write(self.server_ca.ocsp_response(self.cert_a[0], NOW - 3 * DAY, NOW - DAY))
        os.replace(ocsp_path + ".new", ocsp_path)
        harness.wait_until(lambda: "OCSP response expired" in proxy.log(), what="the reload warning")
        harness.wait_until(lambda: "OCSP response: no response sent" in s_client(proxy.port(), "-status"),
                           what="no staple")
        # One for another certificate: not stapled either.
        with open(ocsp_path + ".new", "wb") as f:
            f.write(self.server_ca.ocsp_response(self.cert_b[0], NOW - DAY, NOW + DAY))
        os.replace(ocsp_path + ".new", ocsp_path)
        harness.wait_until(lambda: "is not for this certificate" in proxy.log(),
                           what="the mismatch warning")
        self.assertIn("OCSP response: no response sent", s_client(proxy.port(), "-status"))

    def test_ocsp_problems_are_validation_warnings(self):
        ocsp_path = os.path.join(self.workdir, "b.ocsp")
        with open(ocsp_path, "wb") as f:
            f.write(self.server_ca.ocsp_response(self.cert_a[0], NOW - DAY, NOW + DAY))
        cert, key = self.cert_b
        path = self.write_config("ocsp.textproto", f"""
            listeners {{ address: "127.0.0.1:0"
              routes {{ hostname: "b.test" backend: "127.0.0.1:1" mode: L7 ocsp_response: "{ocsp_path}"
                       tls_cert: "{cert}" tls_key: "{key}" }} }}""")
        result = harness.ctl("validate", "--config", path, check=False)
        self.assertIn("listeners[0].routes[0].ocsp_response: the OCSP response is not for this "
                      "certificate", result.stdout + result.stderr)
        missing = self.write_config("ocsp-missing.textproto", open(path).read().replace(
            ocsp_path, ocsp_path + ".absent"))
        result = harness.ctl("validate", "--config", missing, check=False)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("listeners[0].routes[0].ocsp_response", result.stdout + result.stderr)

    # --- session tickets --------------------------------------------------------------------

    def test_sessions_resume_on_every_worker_and_across_a_renewed_certificate(self):
        cert = os.path.join(self.workdir, "renewed.crt")
        key = os.path.join(self.workdir, "renewed.key")
        shutil.copy(self.cert_a[0], cert)
        shutil.copy(self.cert_a[1], key)
        proxy, _, _ = self.start(cert_key=(cert, key), workers=2,
                                 extra_args=("--db-poll-ms", "100"))
        ctx = self.certs.client_context()
        status, _, session, reused = https_get(proxy.port(), ctx)
        self.assertEqual(("HTTP/1.1 200 OK", False), (status, reused))
        for _ in range(12):  # SO_REUSEPORT spreads these over both workers
            status, _, _, reused = https_get(proxy.port(), ctx, session=session)
            self.assertEqual(("HTTP/1.1 200 OK", True), (status, reused))
        # A renewed certificate (new key too) is a new TLS context after the reload.
        renewed_cert, renewed_key = self.certs.leaf("a-renewed", ["a.test"])
        shutil.copy(renewed_key, key + ".new")
        shutil.copy(renewed_cert, cert + ".new")
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)
        harness.wait_until(lambda: proxy.log().count("reload done") >= 1, what="the reload")
        status, _, _, reused = https_get(proxy.port(), ctx, session=session)
        self.assertEqual(("HTTP/1.1 200 OK", True), (status, reused))
        # A new client gets the new certificate.
        raw = socket.create_connection(("127.0.0.1", proxy.port()), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
            with open(renewed_cert, "rb") as f:
                expected = x509.load_pem_x509_certificate(f.read()).public_bytes(
                    serialization.Encoding.DER)
            self.assertEqual(expected, tls.getpeercert(binary_form=True))


if __name__ == "__main__":
    unittest.main()
