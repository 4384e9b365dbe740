"""The PROXY protocol corpus (test/fuzz/corpus/proxy_protocol: the spec's valid and invalid
shapes, v1 and v2) sent to a live listener: each valid header is accepted and the connection
goes on to its backend; each invalid one closes that connection alone, counted as
proxy_protocol_bad_header; a header cut short is closed by the header timeout."""

import os
import socket
import unittest

from test.integration import harness


class ProxyProtocolCorpusTest(harness.ProxyTestCase):
    def test_every_corpus_header_on_a_live_listener(self):
        backend = self.echo_backend(self.cert_a)
        api = "type.googleapis.com/mcproxy.extensions.filters.network.proxy_protocol.v1"
        proxy = self.start_proxy(f"""
            listeners {{ name: "o" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.0/8"
              filters {{ name: "mcproxy.filters.network.proxy_protocol"
                typed_config {{ [{api}.ProxyProtocol] {{ header_timeout_ms: 300 }} }} }}
              filters {{ name: "mcproxy.filters.network.tls_inspector" }}
              filters {{ name: "mcproxy.filters.network.router" }}
              filters {{ name: "mcproxy.filters.network.tcp_proxy" }}
              routes {{ hostname: "a.test" backend: "{backend.address}" mode: L4 }} }}""")
        port = proxy.port()
        corpus = os.path.join(os.environ["TEST_SRCDIR"], "mcproxy", "test", "fuzz", "corpus",
                              "proxy_protocol")
        named = sorted(n for n in os.listdir(corpus) if n.split("_")[0] in
                       ("valid", "invalid", "partial"))
        self.assertGreater(len(named), 40)
        context = self.certs.client_context()

        def header(name):
            with open(os.path.join(corpus, name), "rb") as f:
                return f.read()

        for name in (n for n in named if n.startswith("valid_")):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.sendall(header(name))
            if name.endswith("followed_by_payload"):
                # Accepted: the listener waits for the rest of the ClientHello that began.
                raw.settimeout(0.5)
                with self.assertRaises(socket.timeout, msg=name):
                    raw.recv(1)
                raw.close()
                continue
            with context.wrap_socket(raw, server_hostname="a.test") as tls:
                tls.sendall(b"ping\n")
                self.assertEqual("ping\n", harness.read_line(tls), name)
        invalid = [n for n in named if n.startswith("invalid_")]
        for name in invalid:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(header(name))
                self.assertTrue(harness.closed_by_peer(conn), name)
        partial = [n for n in named if n.startswith("partial_")]
        for name in partial:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(header(name))
                self.assertTrue(harness.closed_by_peer(conn), name)
        proxy.wait_stat("listener.o.close.proxy_protocol_bad_header", len(invalid))
        proxy.wait_stat("listener.o.close.proxy_protocol_timeout", len(partial))
        stats = proxy.stats()
        self.assertEqual(len(invalid), stats["listener.o.close.proxy_protocol_bad_header"])


if __name__ == "__main__":
    unittest.main()
