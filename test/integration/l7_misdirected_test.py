"""RFC 9110 §15.5.20 / RFC 9113 §9.1.1: a request whose authority another route serves (or none
does) is answered 421 Misdirected Request on a connection routed by its SNI, over HTTP/2 and
HTTP/1.1, and counted; the connection goes on serving its own name."""

import unittest

from test.integration import harness
from test.integration import l7_harness


class MisdirectedRequestTest(l7_harness.L7TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # One certificate for both names: a browser would reuse an a.test connection for b.test.
        cls.cert_ab = cls.certs.leaf("ab.test", ["a.test", "b.test", "*.w.test"])

    def start(self):
        a = self.http1_backend(name="a")
        b = self.http1_backend(name="b")
        http1 = 'backend_protocol: HTTP1'
        return self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              {self.l7_route("a.test", a.address, self.cert_ab, http1)}
              {self.l7_route("b.test", b.address, self.cert_ab, http1)}
              {self.l7_route("*.w.test", a.address, self.cert_ab, http1)} }}""")

    def request(self, port, sni, authority, protocol):
        """curl connects with SNI `sni` and asks for `authority` (Host or :authority)."""
        return self.curl(port, "/who", sni, protocol, "-H", f"Host: {authority}")

    def test_another_routes_authority_gets_421_over_both_protocols(self):
        proxy = self.start()
        port = proxy.port()
        for protocol in ("--http2", "--http1.1"):
            with self.subTest(protocol=protocol):
                rc, body, meta, err = self.request(port, "a.test", "b.test", protocol)
                self.assertEqual(0, rc, err)
                self.assertTrue(meta.startswith("421"), meta)
                self.assertIn(b"misdirected", body)
                # Its own name, and its own name with a port and another case: served.
                for authority in ("a.test", f"A.Test:{port}"):
                    rc, body, meta, err = self.request(port, "a.test", authority, protocol)
                    self.assertTrue(meta.startswith("200"), (authority, meta, err))
                    self.assertTrue(body.startswith(b"backend=a\n"), body)
        self.assertEqual(2, proxy.stats().get("route.edge.a.test.rq_misdirected"))

    def test_an_authority_no_route_serves_gets_421(self):
        proxy = self.start()
        for protocol in ("--http2", "--http1.1"):
            _, _, meta, err = self.request(proxy.port(), "a.test", "nowhere.test", protocol)
            self.assertTrue(meta.startswith("421"), (protocol, meta, err))

    def test_names_one_wildcard_route_serves_share_its_connections(self):
        proxy = self.start()
        _, body, meta, err = self.request(proxy.port(), "x.w.test", "y.w.test", "--http2")
        self.assertTrue(meta.startswith("200"), (meta, err))
        self.assertTrue(body.startswith(b"backend=a\n"), body)
        # a.test has the same backend but is another route (its own policy): refused.
        _, _, meta, _ = self.request(proxy.port(), "x.w.test", "a.test", "--http2")
        self.assertTrue(meta.startswith("421"), meta)

    def test_one_connection_serves_its_name_after_a_421(self):
        proxy = self.start()
        port = proxy.port()
        # curl sends both requests on one HTTP/2 connection (the second reuses it).
        args = ["-H", "Host: b.test", f"https://a.test:{port}/who", "--next",
                "--cacert", self.certs.ca_cert, "--resolve", f"a.test:{port}:127.0.0.1",
                "--http2"]
        rc, body, meta, err = self.curl(port, "/who", "a.test", "--http2", *args)
        self.assertEqual(0, rc, err)
        self.assertIn(b"misdirected", body)
        self.assertIn(b"backend=a\n", body)
        self.assertEqual(1, proxy.stats().get("route.edge.a.test.rq_misdirected"))


if __name__ == "__main__":
    unittest.main()
