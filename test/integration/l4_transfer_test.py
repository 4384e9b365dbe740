"""L4 data path through the real binary: big transfers, concurrency, half-close, backpressure."""

import asyncio
import os
import socket
import ssl
import threading
import time
import unittest

from test.integration import harness

TEN_MB = 10 * 1024 * 1024


class TransferTest(harness.ProxyTestCase):
    def proxy_to(self, backend, filters=""):
        return self.start_proxy(f"""
            listeners {{ name: "t" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "{backend.address}" }}
              {filters} }}""")

    def echo_ten_megabytes(self, port):
        payload = os.urandom(TEN_MB)
        ctx = self.certs.client_context()

        async def transfer():
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                           server_hostname="a.test")

            async def send():
                # Send and receive at once: the echo comes back while we are still sending.
                for offset in range(0, TEN_MB, 1 << 20):
                    writer.write(payload[offset:offset + (1 << 20)])
                    await writer.drain()

            sender = asyncio.ensure_future(send())
            received = await reader.readexactly(TEN_MB)
            await sender
            writer.close()
            await writer.wait_closed()
            return received

        received = asyncio.run(asyncio.wait_for(transfer(), 120))
        self.assertEqual(len(received), TEN_MB)
        self.assertEqual(harness.sha256(received), harness.sha256(payload))

    def test_ten_megabytes_both_ways_byte_identical_with_splice(self):
        proxy = self.proxy_to(self.echo_backend(self.cert_a))
        self.echo_ten_megabytes(proxy.port())
        stats = proxy.stats()
        # TLS framing adds bytes; the payload alone is 10 MB each way.
        self.assertGreater(stats["route.t.a.test.bytes_from_downstream"], TEN_MB)
        self.assertGreater(stats["route.t.a.test.bytes_to_downstream"], TEN_MB)

    def test_idle_connections_hold_no_pipes_or_buffers(self):
        """A pipe (or buffer) is taken from the worker's pool only while bytes are in flight:
        an idle passthrough connection costs its two sockets, not six descriptors."""
        for filters in ("", harness.filter_chain(tcp_proxy="disable_splice: true")):
            proxy = self.proxy_to(self.echo_backend(self.cert_a), filters)
            base = len(os.listdir(f"/proc/{proxy.proc.pid}/fd"))
            ctx = self.certs.client_context()
            clients = []
            self.addCleanup(lambda: [c.close() for c in clients])
            for i in range(40):
                tls = harness.tls_connect(proxy.port(), "a.test", ctx)
                tls.sendall(b"ping %d\n" % i)
                self.assertEqual(harness.read_line(tls), "ping %d\n" % i)
                clients.append(tls)
            held = len(os.listdir(f"/proc/{proxy.proc.pid}/fd")) - base
            # Two sockets per connection, plus the few idle pipes a worker's pool keeps.
            self.assertLessEqual(held, 2 * 40 + 8, f"{held} descriptors for 40 idle connections")
            for tls in clients:  # and they still work after idling
                tls.sendall(b"again\n")
                self.assertEqual(harness.read_line(tls), "again\n")
            for tls in clients:
                tls.close()
            clients.clear()

    def test_ten_megabytes_both_ways_byte_identical_through_user_space(self):
        proxy = self.proxy_to(self.echo_backend(self.cert_a),
                              harness.filter_chain(tcp_proxy="disable_splice: true buffer_bytes: 16384"))
        self.echo_ten_megabytes(proxy.port())

    def test_two_hundred_concurrent_connections_all_complete(self):
        backend = self.echo_backend(self.cert_a)
        proxy = self.proxy_to(backend)
        port = proxy.port()
        ctx = self.certs.client_context()

        async def one(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                           server_hostname="a.test")
            payload = os.urandom(32 * 1024) + str(i).encode()
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(len(payload))
            writer.close()
            await writer.wait_closed()  # TLS close_notify both ways, then FIN both ways
            return got == payload

        async def all_of_them():
            return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 120)

        results = asyncio.run(all_of_them())
        self.assertEqual(sum(results), 200)
        self.assertEqual(backend.connections, 200)
        proxy.wait_stat("listener.t.close.finished", 200, timeout=30)
        stats = proxy.stats()
        self.assertEqual(stats["listener.t.downstream_cx_total"], 200)
        self.assertEqual(stats.get("listener.t.downstream_cx_active", 0), 0)


class HalfCloseTest(harness.ProxyTestCase):
    """After the ClientHello, L4 bytes are opaque, so a raw TCP backend can check TCP semantics."""

    def test_half_close_passes_both_ways(self):
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        seen = {}

        def backend():
            conn, _ = listener.accept()
            with conn:
                data = harness.recv_all(conn)  # ends only when the client's FIN came through
                seen["data"] = data
                conn.sendall(b"after your FIN: " + harness.sha256(data).encode())
            # closing here sends our FIN back through the proxy

        thread = threading.Thread(target=backend, daemon=True)
        thread.start()
        proxy = self.start_proxy(f"""
            listeners {{ name: "h" address: "127.0.0.1:0"
              routes {{ hostname: "half.test" backend: "127.0.0.1:{listener.getsockname()[1]}" }} }}""")
        request = harness.client_hello("half.test") + os.urandom(300000)
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=20) as conn:
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
            reply = harness.recv_all(conn)
        thread.join(20)
        self.assertEqual(seen["data"], request)
        self.assertEqual(reply, b"after your FIN: " + harness.sha256(request).encode())
        proxy.wait_stat("listener.h.close.finished")


class BackpressureTest(harness.ProxyTestCase):
    def test_slow_reader_does_not_make_the_proxy_buffer(self):
        """The backend writes as fast as it can to a client that reads nothing: the proxy must
        stop reading from the backend, so the backend blocks and the proxy's memory stays flat."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        sent = {"bytes": 0}
        stop = threading.Event()

        def flooding_backend():
            conn, _ = listener.accept()
            conn.settimeout(0.5)
            chunk = b"x" * 65536
            with conn:
                while not stop.is_set():
                    try:
                        sent["bytes"] += conn.send(chunk)
                    except socket.timeout:
                        continue
                    except OSError:
                        return

        thread = threading.Thread(target=flooding_backend, daemon=True)
        thread.start()
        proxy = self.start_proxy(f"""
            listeners {{ name: "bp" address: "127.0.0.1:0"
              routes {{ hostname: "flood.test" backend: "127.0.0.1:{listener.getsockname()[1]}" }} }}""",
                                 workers=1)
        baseline_kib = harness.rss_kib(proxy.proc.pid)
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=20) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            conn.sendall(harness.client_hello("flood.test"))
            # Let the flood fill every buffer on the way, then watch it stop growing.
            harness.wait_until(lambda: sent["bytes"] > 1 << 20, what="backend to start sending")
            time.sleep(1.5)
            stalled_at = sent["bytes"]
            time.sleep(1.0)
            stalled_growth = sent["bytes"] - stalled_at
            rss_growth_kib = harness.rss_kib(proxy.proc.pid) - baseline_kib
            # Now read: the stream resumes.
            conn.settimeout(10)
            drained = 0
            while drained < 8 << 20:
                drained += len(conn.recv(1 << 20))
            stop.set()
        thread.join(10)
        # Socket buffers on loopback hold a few MB at most; without backpressure the backend
        # would have pushed hundreds of MB in 2.5 s.
        self.assertLess(stalled_at, 32 << 20, "backend was never blocked")
        self.assertEqual(stalled_growth, 0, "backend kept sending while the client read nothing")
        self.assertLess(rss_growth_kib, 8 * 1024, "proxy memory grew with the stalled stream")
        self.assertGreaterEqual(drained, 8 << 20)


if __name__ == "__main__":
    unittest.main()
