"""WebSockets through an L7 route (issue 15): HTTP/1.1 Upgrade and HTTP/2 extended CONNECT
(RFC 8441) from clients, to HTTP/1.1 backends (Upgrade) and HTTP/2 backends that offer
extended CONNECT, with real peers: python3-websockets' server and client (and its sans-I/O
protocol over python3-h2 for the HTTP/2 sides). Echo of large and fragmented messages, ping/pong,
the close handshake, a backend dying mid-stream, the upgrade idle timeout, allow_upgrades."""

import asyncio
import os
import socket
import ssl
import threading
import time
import unittest

import h2.config
import h2.connection
import h2.events
import h2.settings
import websockets
import websockets.connection
import websockets.exceptions
import websockets.frames
from websockets.connection import Side

from test.integration import harness
from test.integration import l7_harness

BIG = os.urandom(1024 * 1024)


class Http1WebSocketBackend:
    """python3-websockets' server (HTTP/1.1 Upgrade), echoing every message; a message "die"
    makes it drop the TCP connection without a close frame. Records each handshake's headers."""

    def __init__(self, loop_thread):
        self.loop_thread = loop_thread
        self.handshakes = []

        async def echo(ws, path=None):
            self.handshakes.append(ws.request_headers)
            try:
                async for message in ws:
                    if message == "die":
                        ws.transport.abort()
                        return
                    await ws.send(message)
            except websockets.exceptions.ConnectionClosed:
                pass  # a close code other than 1000, or the tunnel broke: the test judges

        async def start():
            return await websockets.serve(echo, "127.0.0.1", 0, max_size=4 * 1024 * 1024,
                                          compression=None)

        self.server = loop_thread.run(start())
        self.address = "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        self.loop_thread.run(stop())


class Http2WebSocketBackend:
    """An h2c server (python3-h2) that offers SETTINGS_ENABLE_CONNECT_PROTOCOL and runs the
    WebSocket protocol (websockets' sans-I/O side) over each extended CONNECT stream: echo, and
    "die" resets the whole connection."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.requests = []
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        sessions = {}
        pending = {}  # stream id -> bytes waiting for the proxy's flow-control window
        partial = {}  # stream id -> [opcode, bytes] of a fragmented message
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {k.decode(): v.decode() for k, v in event.headers}
                        self.requests.append(headers)
                        if headers.get(":protocol") != "websocket":
                            conn.send_headers(event.stream_id, [(":status", "400")],
                                              end_stream=True)
                            continue
                        conn.send_headers(event.stream_id, [(":status", "200")])
                        sessions[event.stream_id] = websockets.connection.Connection(
                            Side.SERVER, max_size=4 * 1024 * 1024)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                        ws = sessions.get(event.stream_id)
                        if ws is None:
                            continue
                        ws.receive_data(event.data)
                        for frame in ws.events_received():
                            # A message may come in fragments: it is echoed whole.
                            Opcode = websockets.frames.Opcode
                            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                                message = [frame.opcode, bytes(frame.data)]
                                partial[event.stream_id] = message
                            elif frame.opcode == Opcode.CONT:
                                message = partial[event.stream_id]
                                message[1] += frame.data
                            else:
                                continue
                            if not frame.fin:
                                continue
                            if message[1] == b"die":
                                sock.close()
                                return
                            (ws.send_text if message[0] == Opcode.TEXT else ws.send_binary)(
                                message[1])
                        for chunk in ws.data_to_send():
                            pending[event.stream_id] = pending.get(event.stream_id, b"") + chunk
                    elif isinstance(event, h2.events.StreamEnded):
                        if event.stream_id in sessions:
                            conn.end_stream(event.stream_id)
                # What fits in the windows goes now; the rest after WINDOW_UPDATEs.
                for stream_id, chunk in list(pending.items()):
                    size = min(len(chunk), conn.local_flow_control_window(stream_id))
                    while size > 0:
                        piece = min(size, conn.max_outbound_frame_size)
                        conn.send_data(stream_id, chunk[:piece])
                        chunk, size = chunk[piece:], size - piece
                    pending[stream_id] = chunk
                sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return

    def close(self):
        self.listener.close()
        for sock in self.conns:
            try:
                sock.close()
            except OSError:
                pass


class Http2WebSocketClient:
    """A WebSocket over an HTTP/2 TLS connection to the proxy (RFC 8441), driven on the calling
    thread: python3-h2 for the connection, websockets' sans-I/O protocol for the frames."""

    def __init__(self, port, certs, host="a.test"):
        ctx = certs.client_context()
        ctx.set_alpn_protocols(["h2"])
        self.tls = harness.tls_connect(port, host, ctx)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.tls.sendall(self.conn.data_to_send())
        self.host = host
        self.ws = websockets.connection.Connection(Side.CLIENT, max_size=4 * 1024 * 1024)
        self.stream_id = None
        self.status = None
        self.ended = False
        self.reset = False
        self.server_settings = {}

    def _pump(self, timeout=10):
        self.tls.settimeout(timeout)
        data = self.tls.recv(65536)
        if not data:
            raise ConnectionError("the proxy closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                for code, setting in event.changed_settings.items():
                    self.server_settings[code] = setting.new_value
            elif isinstance(event, h2.events.ResponseReceived):
                self.status = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.ws.receive_data(event.data)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
                self.ws.receive_eof()
            elif isinstance(event, h2.events.StreamReset):
                self.reset = True
        self.tls.sendall(self.conn.data_to_send())

    def wait_settings(self):
        deadline = time.monotonic() + 10
        while h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS not in self.server_settings:
            if time.monotonic() > deadline:
                raise AssertionError("no SETTINGS from the proxy")
            self._pump()
        return self.server_settings

    def open(self, path="/chat"):
        self.wait_settings()
        self.stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.stream_id, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", path), (":authority", self.host), ("sec-websocket-version", "13")])
        self.tls.sendall(self.conn.data_to_send())
        deadline = time.monotonic() + 10
        while self.status is None and not self.reset:
            if time.monotonic() > deadline:
                raise AssertionError("no answer to the extended CONNECT")
            self._pump()
        return self.status

    def flush(self):
        for chunk in self.ws.data_to_send():
            if not chunk:
                self.conn.end_stream(self.stream_id)
                continue
            while chunk:
                window = self.conn.local_flow_control_window(self.stream_id)
                if window <= 0:
                    self.tls.sendall(self.conn.data_to_send())
                    self._pump()
                    continue
                size = min(len(chunk), window, self.conn.max_outbound_frame_size)
                self.conn.send_data(self.stream_id, chunk[:size])
                chunk = chunk[size:]
        self.tls.sendall(self.conn.data_to_send())

    def next_event(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            events = self.ws.events_received()
            if events:
                self._pending = events[1:]
                return events[0]
            if self.ended or self.reset:
                return None
            if time.monotonic() > deadline:
                raise AssertionError("no WebSocket frame in time")
            self._pump(timeout=max(0.1, deadline - time.monotonic()))

    def close(self):
        self.tls.close()


class WebSocketTest(l7_harness.L7TestCase):
    def start(self, backend, backend_protocol="HTTP1", hcm="", route_extra=""):
        extra = f"backend_protocol: {backend_protocol} {route_extra}"
        chain = harness.hcm_chain(hcm) if hcm else ""
        return self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0" {chain}
              {self.l7_route("a.test", backend.address, self.cert_a, extra)} }}""")

    def http1_backend_ws(self):
        backend = Http1WebSocketBackend(self.loop)
        self.addCleanup(backend.close)
        return backend

    def http2_backend_ws(self):
        backend = Http2WebSocketBackend()
        self.addCleanup(backend.close)
        return backend

    def ws_url(self, proxy, path="/chat"):
        return f"wss://a.test:{proxy.port()}{path}"

    async def _http1_client(self, proxy, scenario):
        ctx = self.certs.client_context()
        sock = socket.create_connection(("127.0.0.1", proxy.port()))
        async with websockets.connect(self.ws_url(proxy), ssl=ctx, sock=sock,
                                      server_hostname="a.test", max_size=4 * 1024 * 1024,
                                      compression=None, open_timeout=10) as ws:
            return await scenario(ws)

    def http1_client(self, proxy, scenario):
        return self.loop.run(self._http1_client(proxy, scenario), timeout=60)

    async def echo_scenario(self, ws):
        await ws.send("hello")
        self.assertEqual("hello", await ws.recv())
        await ws.send(BIG)
        self.assertEqual(BIG, await ws.recv())
        # A fragmented message: three frames, one message back.
        await ws.send(["frag-1 ", "frag-2 ", "frag-3"])
        self.assertEqual("frag-1 frag-2 frag-3", await ws.recv())
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.close(code=4001, reason="done here")
        return ws.close_code, ws.close_reason

    def h2_echo(self, client):
        ws = client.ws
        ws.send_text(b"hello")
        client.flush()
        self.assertEqual(b"hello", client.next_event().data)
        ws.send_binary(BIG)
        client.flush()
        self.assertEqual(BIG, client.next_event().data)
        ws.send_text(b"frag-1 ", fin=False)
        ws.send_continuation(b"frag-2 ", fin=False)
        ws.send_continuation(b"frag-3", fin=True)
        client.flush()
        # websockets' sans-I/O side hands frames over as they come; the echo is one message.
        self.assertEqual(b"frag-1 frag-2 frag-3", client.next_event().data)
        ws.send_ping(b"are you there")
        client.flush()
        pong = client.next_event()
        self.assertEqual(websockets.frames.Opcode.PONG, pong.opcode)
        self.assertEqual(b"are you there", pong.data)
        ws.send_close(4001, "done here")
        client.flush()
        close = client.next_event()
        self.assertEqual(websockets.frames.Opcode.CLOSE, close.opcode)
        return websockets.frames.Close.parse(close.data)

    def test_http1_client_to_http1_backend(self):
        backend = self.http1_backend_ws()
        proxy = self.start(backend)
        code, reason = self.http1_client(proxy, self.echo_scenario)
        self.assertEqual((4001, "done here"), (code, reason))
        headers = backend.handshakes[0]
        self.assertEqual("websocket", headers["Upgrade"].lower())
        self.assertIn("x-forwarded-for", {k.lower() for k in headers.keys()})
        self.assertEqual(1, proxy.stats().get("route.edge.a.test.rq_total"))

    def test_http1_client_to_http2_backend(self):
        backend = self.http2_backend_ws()
        proxy = self.start(backend, backend_protocol="H2")
        code, reason = self.http1_client(proxy, self.echo_scenario)
        self.assertEqual((4001, "done here"), (code, reason))
        request = backend.requests[0]
        self.assertEqual(("CONNECT", "websocket", "/chat"),
                         (request[":method"], request[":protocol"], request[":path"]))
        self.assertNotIn("sec-websocket-key", request)
        self.assertNotIn("upgrade", request)

    def test_http2_client_to_http1_backend(self):
        backend = self.http1_backend_ws()
        proxy = self.start(backend)
        client = Http2WebSocketClient(proxy.port(), self.certs)
        self.addCleanup(client.close)
        settings = client.wait_settings()
        self.assertEqual(1, settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL))
        self.assertEqual("200", client.open())
        close = self.h2_echo(client)
        self.assertEqual((4001, "done here"), (close.code, close.reason))
        # The backend got an HTTP/1.1 handshake the proxy made up (RFC 8441 has no key).
        self.assertEqual("websocket", backend.handshakes[0]["Upgrade"].lower())
        self.assertTrue(backend.handshakes[0]["Sec-WebSocket-Key"])

    def test_http2_client_to_http2_backend(self):
        backend = self.http2_backend_ws()
        proxy = self.start(backend, backend_protocol="H2")
        client = Http2WebSocketClient(proxy.port(), self.certs)
        self.addCleanup(client.close)
        self.assertEqual("200", client.open())
        close = self.h2_echo(client)
        self.assertEqual((4001, "done here"), (close.code, close.reason))
        self.assertEqual("websocket", backend.requests[0][":protocol"])

    def test_backend_dying_mid_stream_ends_the_clients_websocket(self):
        for backend_protocol in ("HTTP1", "H2"):
            with self.subTest(backend=backend_protocol):
                backend = (self.http1_backend_ws() if backend_protocol == "HTTP1"
                           else self.http2_backend_ws())
                proxy = self.start(backend, backend_protocol=backend_protocol)

                async def scenario(ws):
                    await ws.send("hello")
                    self.assertEqual("hello", await ws.recv())
                    await ws.send("die")
                    with self.assertRaises(websockets.exceptions.ConnectionClosedError):
                        await asyncio.wait_for(ws.recv(), 10)
                    return True

                self.assertTrue(self.http1_client(proxy, scenario))
                client = Http2WebSocketClient(proxy.port(), self.certs)
                self.addCleanup(client.close)
                self.assertEqual("200", client.open())
                client.ws.send_text(b"die")
                client.flush()
                self.assertIsNone(client.next_event())  # the stream ended, no close frame
                self.assertTrue(client.ended or client.reset)
                proxy.kill()

    def test_idle_tunnel_is_closed_after_upgrade_idle_timeout(self):
        backend = self.http1_backend_ws()
        proxy = self.start(backend, hcm="upgrade_idle_timeout_ms: 1000")

        async def scenario(ws):
            # Traffic every 0.3 s keeps it open well past the timeout...
            for i in range(8):
                await ws.send(f"m{i}")
                self.assertEqual(f"m{i}", await ws.recv())
                last_traffic = time.monotonic()
                await asyncio.sleep(0.3)
            # ... and silence ends it, counted from the last byte either way (the proxy's idle
            # time starts there, not after this side's last pause).
            with self.assertRaises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - last_traffic

        waited = self.http1_client(proxy, scenario)
        self.assertGreater(waited, 0.7)
        self.assertLess(waited, 5)
        client = Http2WebSocketClient(proxy.port(), self.certs)
        self.addCleanup(client.close)
        self.assertEqual("200", client.open())
        started = time.monotonic()
        self.assertIsNone(client.next_event(timeout=10))
        self.assertTrue(client.reset)
        self.assertGreater(time.monotonic() - started, 0.7)

    def test_allow_upgrades_false_refuses_websockets(self):
        backend = self.http1_backend_ws()
        proxy = self.start(backend, route_extra="allow_upgrades: false")
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as raised:
            self.http1_client(proxy, self.echo_scenario)
        self.assertEqual(403, raised.exception.status_code)
        client = Http2WebSocketClient(proxy.port(), self.certs)
        self.addCleanup(client.close)
        settings = client.wait_settings()
        self.assertNotIn(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, settings)
        self.assertEqual([], backend.handshakes)
        # Plain requests still go through.
        _, _, meta, err = self.curl(proxy.port(), "/", "a.test", "--http1.1")
        self.assertFalse(meta.startswith("403"), meta)


if __name__ == "__main__":
    unittest.main()
