"""The firewall filter on real connections: addresses, networks, countries (a generated .mmdb),
rate limits; each refusal counted, the backend never reached."""

import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

from test.integration import harness


def make_mmdb(path, *entries):
    script = os.path.join(os.environ["TEST_SRCDIR"], "mcproxy", "test", "integration",
                          "make_test_mmdb.pl")
    subprocess.run(["perl", script, path, *entries], check=True, capture_output=True)


class FirewallTest(harness.ProxyTestCase):
    def ctx(self):
        ctx = self.certs.client_context()
        ctx.check_hostname = False
        return ctx

    def reaches(self, port, source, host="127.0.0.1"):
        """True when a TLS exchange from `source` gets through to the echo backend."""
        try:
            with harness.tls_connect(port, "a.test", self.ctx(), host=host, source=source) as tls:
                tls.sendall(b"ping")
                return tls.recv(4) == b"ping"
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return False

    def test_addresses_and_networks_are_refused_at_accept(self):
        backend = self.echo_backend(self.cert_a)
        config = self.write_config("fw.textproto", f"""
            firewall {{ blocked_ips: "127.0.0.7" blocked_cidrs: "127.0.1.0/24" }}
            listeners {{ name: "v4" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}
            listeners {{ name: "v6" address: "[::1]:0"
              firewall {{ blocked_ips: "::1" }}
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""")
        db = os.path.join(self.workdir, "fw.db")
        harness.ctl("compile", "--config", config, "--db", db)  # rules travel through the store
        proxy = self.start_proxy("", extra_args=("--db", db))
        port = proxy.port("v4")
        self.assertTrue(self.reaches(port, "127.0.0.5"))
        self.assertFalse(self.reaches(port, "127.0.0.7"))
        self.assertFalse(self.reaches(port, "127.0.1.200"))
        self.assertTrue(self.reaches(port, "127.0.2.1"))
        # Refused at accept: closed before the client sent a byte.
        with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.7", 0),
                                      timeout=10) as silent:
            self.assertTrue(harness.closed_by_peer(silent, timeout=5))
        self.assertFalse(self.reaches(proxy.port("v6"), None, host="::1"))
        stats = proxy.stats()
        self.assertEqual(stats["listener.v4.close.firewall_blocked_ip"], 2)
        self.assertEqual(stats["listener.v4.close.firewall_blocked_cidr"], 1)
        self.assertEqual(stats["listener.v6.close.firewall_blocked_ip"], 1)
        self.assertEqual(backend.connections, 2)

    def test_countries_from_a_geoip_database_reloaded_when_it_changes(self):
        backend = self.echo_backend(self.cert_a)
        mmdb = os.path.join(self.workdir, "countries.mmdb")
        make_mmdb(mmdb, "127.0.0.8/32=NL", "127.0.0.9/32=DE")
        proxy = self.start_proxy(f"""
            firewall {{ blocked_countries: "NL" geoip_db: "{mmdb}" }}
            listeners {{ name: "geo" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""",
                                 extra_args=("--db-poll-ms", "100"))
        port = proxy.port()
        self.assertFalse(self.reaches(port, "127.0.0.8"))
        self.assertTrue(self.reaches(port, "127.0.0.9"))
        self.assertTrue(self.reaches(port, "127.0.0.10"))  # not in the database at all
        # The database changes under the running proxy: 127.0.0.9 is now NL too.
        time.sleep(0.05)  # a new mtime even on coarse clocks
        make_mmdb(mmdb, "127.0.0.8/32=NL", "127.0.0.9/32=NL")
        harness.wait_until(lambda: "countries.mmdb changed: reload done" in proxy.log(),
                           what="the GeoIP reload")
        self.assertFalse(self.reaches(port, "127.0.0.9"))
        proxy.wait_stat("listener.geo.close.firewall_blocked_country", 2)

    def test_rate_limit_per_address_survives_a_reload(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            firewall {{ rate_limit {{ connections: 3 per_seconds: 600 }} }}
            listeners {{ name: "rl" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""")
        port = proxy.port()
        for _ in range(3):
            self.assertTrue(self.reaches(port, "127.0.0.20"))
        self.assertFalse(self.reaches(port, "127.0.0.20"))
        self.assertTrue(self.reaches(port, "127.0.0.21"))  # its own bucket
        proxy.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "reload done" in proxy.log(), what="reload")
        self.assertFalse(self.reaches(port, "127.0.0.20"))  # a reload hands out no new tokens
        proxy.wait_stat("listener.rl.close.firewall_rate_limited", 2)

    def test_address_flood_keeps_memory_fixed(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.start_proxy(f"""
            firewall {{ rate_limit {{ connections: 2 per_seconds: 60 max_tracked_addresses: 256 }} }}
            listeners {{ name: "flood" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }} }}""", workers=2)
        port = proxy.port()
        rss_before = harness.rss_kib(proxy.proc.pid)
        for i in range(2000):  # 2,000 distinct source addresses, each opening and closing at once
            source = f"127.{10 + i // 65536}.{(i // 256) % 256}.{i % 256 or 1}"
            with socket.create_connection(("127.0.0.1", port), source_address=(source, 0),
                                          timeout=10):
                pass
        harness.wait_until(
            lambda: proxy.stats().get("listener.flood.downstream_cx_active", 0) == 0,
            what="the flood to drain", interval=0.2)
        rss_growth = harness.rss_kib(proxy.proc.pid) - rss_before
        if not harness.sanitized():  # a sanitizer's quarantine keeps freed memory resident
            self.assertLess(rss_growth, 2048, f"RSS grew {rss_growth} KiB")
        # Still limiting a real client afterwards.
        self.assertTrue(self.reaches(port, "127.0.0.30"))
        self.assertTrue(self.reaches(port, "127.0.0.30"))
        self.assertFalse(self.reaches(port, "127.0.0.30"))
        self.assertEqual(proxy.terminate(), 0, proxy.log()[-3000:])  # LeakSanitizer exits 23


if __name__ == "__main__":
    unittest.main()
