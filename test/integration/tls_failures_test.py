"""TLS failures have reasons: failed handshakes with clients counted by reason (no shared
version or cipher, an alert from the client, the client gone, a timeout) and logged, rate
limited; handshakes counted by TLS version; and an L7 certificate checked when the config is
compiled: a leaf-only file, intermediates that lead nowhere, an expired or not yet valid
certificate, a hostname it does not cover are warnings naming the field; a key that does not
match is an error."""

import os
import socket
import ssl
import subprocess
import time
import unittest

from test.integration import harness
from test.integration.l7_harness import L7TestCase


class TlsFailuresTest(L7TestCase):
    def start(self):
        backend = self.http1_backend(name="web")
        return self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", backend.address, self.cert_a, "backend_protocol: HTTP1")}
              {harness.hcm_chain("tls_handshake_timeout_ms: 300")} }}""")

    def s_client(self, port, *args):
        return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                               "-servername", "a.test", *args], input="", capture_output=True,
                              text=True, timeout=20)

    def test_failed_handshakes_are_counted_by_reason_and_logged(self):
        proxy = self.start()
        port = proxy.port()
        self.s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")  # version
        self.s_client(port, "-tls1_2", "-cipher", "AES128-SHA")  # RSA key exchange: refused
        with self.assertRaises(ssl.SSLError):  # the client does not trust the certificate
            with harness.tls_connect(port, "a.test", ssl.create_default_context()):
                pass
        with socket.create_connection(("127.0.0.1", port)) as raw:  # gone mid-handshake
            raw.sendall(harness.client_hello("a.test"))
            raw.recv(1)
        with socket.create_connection(("127.0.0.1", port)) as raw:  # never finishes
            raw.sendall(harness.client_hello("a.test"))
            harness.recv_all(raw, timeout=5)  # the server's flight, then the close (no timeout)
        # And two that succeed, one per version.
        for version in ("--tlsv1.2", "--tlsv1.3"):
            extra = (version, "--tls-max", "1.2") if version == "--tlsv1.2" else (version,)
            code, body, meta, err = self.curl(port, "/", "a.test", *extra)
            self.assertEqual(code, 0, err)

        prefix = "listener.edge.tls."
        stats = harness.wait_until(
            lambda: (lambda s: s if s.get(prefix + "handshake_failures.client_closed") else None)(
                proxy.stats()), what="the failures counted")
        self.assertEqual(stats[prefix + "handshake_failures.no_shared_version"], 1)
        self.assertEqual(stats[prefix + "handshake_failures.no_shared_cipher"], 1)
        self.assertEqual(stats[prefix + "handshake_failures.client_alert"], 1)
        self.assertEqual(stats[prefix + "handshake_failures.client_closed"], 1)
        self.assertEqual(stats[prefix + "handshake_failures.timeout"], 1)
        self.assertEqual(stats[prefix + "handshakes.TLSv1.2"], 1)
        self.assertEqual(stats[prefix + "handshakes.TLSv1.3"], 1)
        self.assertEqual(stats["listener.edge.close.tls_handshake_failed"], 5)
        log = proxy.log()
        self.assertIn("failed: no_shared_cipher: ", log)
        self.assertIn("failed: client_alert: ", log)
        self.assertIn("alert unknown ca", log)  # what the client said, for the operator
        self.assertIn("failed: timeout: ", log)

    def test_handshake_failure_lines_are_rate_limited(self):
        proxy = self.start()
        port = proxy.port()
        hello = harness.client_hello("a.test")
        for _ in range(40):  # 40 in well under two seconds
            with socket.create_connection(("127.0.0.1", port)) as raw:
                raw.sendall(hello)
        proxy.wait_stat("listener.edge.tls.handshake_failures.client_closed", 40)
        time.sleep(1.1)  # a new second: the next line says how many were left out
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(hello)
        proxy.wait_stat("listener.edge.tls.handshake_failures.client_closed", 41)
        lines = harness.wait_until(
            lambda: (lambda l: l if any("more not logged" in x for x in l) else None)(
                [x for x in proxy.log().splitlines() if "TLS handshake with" in x]),
            what="the line after the limit")
        self.assertLessEqual(len(lines), 31)  # at most 10 per second
        self.assertLess(len(lines), 41)


class CertificateCheckTest(L7TestCase):
    """mcproxyctl validate (the same compile the proxy runs) with the test CA standing in for
    the system bundle (SSL_CERT_FILE)."""

    def openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def key(self, name):
        path = os.path.join(self.workdir, f"check-{name}.key")
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", path)
        return path

    def sign(self, name, key, issuer_cert, issuer_key, sans=(), ca=False, start=None, end=None):
        """A certificate for `key` signed by the issuer (openssl ca, for arbitrary dates)."""
        directory = os.path.join(self.workdir, f"ca-{name}")
        os.makedirs(directory)
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("%02X\n" % (len(name) + 16))
        ext = os.path.join(directory, "ext.cnf")
        with open(ext, "w") as f:
            f.write("[ext]\n")
            if ca:
                f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n")
            if sans:
                f.write("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n")
        config = os.path.join(directory, "ca.cnf")
        with open(config, "w") as f:
            f.write(f"""[ca]
default_ca = local
[local]
dir = {directory}
database = {directory}/index.txt
serial = {directory}/serial
new_certs_dir = {directory}
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
""")
        csr = os.path.join(directory, "req.csr")
        cert = os.path.join(self.workdir, f"check-{name}.crt")
        self.openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
        self.openssl("ca", "-batch", "-config", config, "-cert", issuer_cert, "-keyfile",
                     issuer_key, "-in", csr, "-out", cert, "-notext", "-extfile", ext,
                     "-extensions", "ext", "-startdate", start or "20240101000000Z",
                     "-enddate", end or "20991231000000Z")
        return cert

    def validate(self, hostname, cert, key):
        config = self.write_config(f"check-{time.monotonic_ns()}.textproto", f"""
            listeners {{ address: "127.0.0.1:0"
              routes {{ hostname: "{hostname}" mode: L7 backend: "127.0.0.1:1"
                        tls_cert: "{cert}" tls_key: "{key}" }} }}""")
        env = dict(os.environ, SSL_CERT_FILE=self.certs.ca_cert)
        result = subprocess.run([harness.binary("mcproxyctl"), "validate", "--config", config],
                                capture_output=True, text=True, timeout=60, env=env)
        warnings = [l.split(": ", 2)[2] for l in result.stderr.splitlines()
                    if l.startswith("warning: ")]
        return result.returncode, warnings, result.stderr

    def chain(self, name, *certs):
        path = os.path.join(self.workdir, f"check-{name}-chain.crt")
        with open(path, "w") as out:
            for cert in certs:
                with open(cert) as f:
                    out.write(f.read())
        return path

    def test_certificate_problems_are_warnings_and_a_wrong_key_an_error(self):
        ca_key = self.certs.ca_key
        ca_cert = self.certs.ca_cert
        inter_key = self.key("inter")
        inter = self.sign("inter", inter_key, ca_cert, ca_key, ca=True)
        # An unrelated intermediate, issued by a CA nobody trusts.
        rogue_ca_key = self.key("rogue-ca")
        rogue_ca = os.path.join(self.workdir, "check-rogue-ca.crt")
        self.openssl("req", "-x509", "-key", rogue_ca_key, "-subj", "/CN=rogue", "-days", "2",
                     "-out", rogue_ca)
        rogue_inter_key = self.key("rogue-inter")
        rogue_inter = self.sign("rogue-inter", rogue_inter_key, rogue_ca, rogue_ca_key, ca=True)
        leaf_key = self.key("leaf")
        leaf = self.sign("leaf", leaf_key, inter, inter_key, sans=("w.test", "*.w.test"))
        field = "listeners[0].routes[0].tls_cert: "

        code, warnings, err = self.validate("w.test", self.chain("good", leaf, inter), leaf_key)
        self.assertEqual((code, warnings), (0, []), err)
        code, warnings, err = self.validate("*.w.test", self.chain("good", leaf, inter), leaf_key)
        self.assertEqual((code, warnings), (0, []), err)

        code, warnings, err = self.validate("w.test", leaf, leaf_key)
        self.assertEqual(code, 0, err)
        self.assertEqual(len(warnings), 1, err)
        self.assertTrue(warnings[0].startswith(field + "the chain does not verify"), warnings)
        self.assertIn("the file holds the leaf certificate only", warnings[0])

        code, warnings, err = self.validate("w.test", self.chain("rogue", leaf, rogue_inter),
                                            leaf_key)
        self.assertEqual(code, 0, err)
        self.assertTrue(any("do not lead to a trusted root" in w for w in warnings), warnings)

        expired = self.sign("expired", leaf_key, inter, inter_key, sans=("w.test",),
                            start="20200101000000Z", end="20200201000000Z")
        code, warnings, err = self.validate("w.test", self.chain("expired", expired, inter),
                                            leaf_key)
        self.assertEqual(code, 0, err)
        self.assertEqual(warnings, [field + "a certificate of the chain expired (the leaf's "
                                    "notAfter: Feb  1 00:00:00 2020 GMT)"])

        future = self.sign("future", leaf_key, inter, inter_key, sans=("w.test",),
                           start="20980101000000Z", end="20991231000000Z")
        code, warnings, err = self.validate("w.test", self.chain("future", future, inter),
                                            leaf_key)
        self.assertEqual(len(warnings), 1, err)
        self.assertIn("is not valid yet", warnings[0])

        code, warnings, err = self.validate("other.test", self.chain("good", leaf, inter),
                                            leaf_key)
        self.assertEqual(warnings, [field + 'the certificate does not cover "other.test" '
                                    "(clients will refuse it)"])

        code, warnings, err = self.validate("w.test", self.chain("good", leaf, inter),
                                            self.key("other"))
        self.assertEqual(code, 1, err)
        self.assertIn("listeners[0].routes[0].tls_key: private key ", err)
        self.assertIn("does not match certificate", err)


if __name__ == "__main__":
    unittest.main()
