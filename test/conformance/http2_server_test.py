"""HTTP/2 conformance of an L7 listener (RFC 9113 frame level), and of the HTTP/2 client that
carries those requests to the backend: a python3-h2 backend checks every frame it receives.

Each case in http2_cases.py runs on its own connection. A case listed in waivers.txt may fail
(the waiver cites the RFC text that allows what we do); a waived case that passes fails the
test, so the list cannot go stale."""

import os
import socket
import threading
import unittest

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from test.conformance import h2wire
from test.conformance import http2_cases
from test.conformance import waivers
from test.integration import harness
from test.integration import l7_harness


class StrictH2Backend:
    """An h2c backend on python3-h2, which validates every frame and header block it receives
    against RFC 9113. Serves 200 "ok" for any path but /missing, which gets a 404 with a body,
    also to HEAD (as nghttpd does). Records every protocol error it saw."""

    def __init__(self):
        self.errors = []
        self.requests = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = []
        harness.accept_in_threads(self.listener, self._serve)

    def close(self):
        self.listener.close()
        for conn in list(self.connections):
            try:
                conn.close()
            except OSError:
                pass

    def _serve(self, sock):
        self.connections.append(sock)
        config = h2.config.H2Configuration(client_side=False, validate_inbound_headers=True,
                                           validate_outbound_headers=False)
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        paths = {}
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    with self.lock:
                        self.errors.append(f"{type(e).__name__}: {e}")
                    try:
                        sock.sendall(conn.data_to_send())
                    except OSError:
                        pass
                    return
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict((k.decode() if isinstance(k, bytes) else k,
                                        v.decode() if isinstance(v, bytes) else v)
                                       for k, v in event.headers)
                        paths[event.stream_id] = headers.get(":path", "")
                        with self.lock:
                            self.requests += 1
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        missing = paths.pop(event.stream_id, "") == "/missing"
                        body = b"no such page\n" if missing else b"ok\n"
                        try:
                            conn.send_headers(event.stream_id,
                                              [(":status", "404" if missing else "200"),
                                               ("content-length", str(len(body)))])
                            conn.send_data(event.stream_id, body, end_stream=True)
                        except h2.exceptions.StreamClosedError:
                            pass  # reset by the proxy in the same batch
                    elif isinstance(event, h2.events.StreamReset):
                        paths.pop(event.stream_id, None)
                try:
                    sock.sendall(conn.data_to_send())
                except OSError:
                    return


class Http2ServerConformanceTest(l7_harness.L7TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.waived = waivers.load("http2")

    def run_cases(self, port, host):
        """Every case on its own connection; returns {case: what went wrong}."""
        failures = {}
        for name, run in http2_cases.CASES.items():
            wire = h2wire.H2Wire(port, host, self.certs.ca_cert)
            try:
                problem = run(wire)
            except (OSError, AssertionError) as e:
                problem = f"{type(e).__name__}: {e}"
            finally:
                wire.close()
            if problem is not None:
                failures[name] = problem
        return failures

    def check(self, failures):
        unexpected = {n: p for n, p in failures.items() if n not in self.waived}
        stale = sorted(n for n in self.waived if n in http2_cases.CASES and n not in failures)
        report = "".join(f"\n  {n}: {p}" for n, p in sorted(unexpected.items()))
        self.assertEqual({}, unexpected, f"{len(unexpected)} of {len(http2_cases.CASES)} "
                                         f"cases failed:{report}")
        self.assertEqual([], stale, "waived cases now pass; remove their waivers")

    def test_server_follows_rfc9113_and_its_upstream_client_too(self):
        nghttpd = self.nghttpd()
        strict = StrictH2Backend()
        self.addCleanup(strict.close)
        proxy = self.start_proxy(f"""
            listeners {{ address: "127.0.0.1:0"
              {self.l7_route("a.test", f"127.0.0.1:{nghttpd.port}", self.cert_a)}
              {self.l7_route("b.test", strict.address, self.cert_b)} }}""")
        port = proxy.port()
        failures = self.run_cases(port, "a.test")
        # Twice through one pooled upstream connection to a backend that validates every frame
        # (RFC 9113 §5.1.1: new streams in increasing order; nothing on a closed stream).
        strict_failures = [self.run_cases(port, "b.test") for _ in range(2)]
        self.assertEqual([], strict.errors, "the proxy broke RFC 9113 towards the backend")
        self.assertGreater(strict.requests, 40)
        for result in [failures] + strict_failures:
            self.check(result)
        self.assertIn("hello from nghttpd", self.curl(port, "/small.html")[1].decode())


if __name__ == "__main__":
    unittest.main()
