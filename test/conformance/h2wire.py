"""A frame-level HTTP/2 client for conformance cases: it sends exactly the frames a case names
(hyperframe builds them, hpack encodes header blocks, raw bytes where a case must break a rule
hyperframe would not let it break) and reports what the server answered."""

import socket
import ssl
import time

import hpack
from hyperframe import frame as hf

PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
COMPRESSION_ERROR = 0x9

ERROR_NAMES = {0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR",
               0x3: "FLOW_CONTROL_ERROR", 0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED",
               0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM", 0x8: "CANCEL",
               0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR", 0xb: "ENHANCE_YOUR_CALM",
               0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED"}


def raw_frame(kind, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) +
            stream.to_bytes(4, "big") + payload)


class Outcome:
    """What the server did after a case's frames: the GOAWAY error, RST_STREAMs by stream, the
    frames it sent, and whether it closed the connection."""

    def __init__(self):
        self.goaway = None
        self.resets = {}
        self.frames = []
        self.closed = False

    def describe(self):
        parts = []
        if self.goaway is not None:
            parts.append("GOAWAY " + ERROR_NAMES.get(self.goaway, hex(self.goaway)))
        for stream, code in self.resets.items():
            parts.append(f"RST_STREAM({stream}) " + ERROR_NAMES.get(code, hex(code)))
        if self.closed and self.goaway is None:
            parts.append("closed without GOAWAY")
        kinds = sorted({type(f).__name__ for f in self.frames} - {"GoAwayFrame", "RstStreamFrame"})
        if kinds:
            parts.append("frames: " + ",".join(kinds))
        return "; ".join(parts) or "nothing"


class H2Wire:
    """One TLS connection speaking HTTP/2 frame by frame. Used from one thread only."""

    def __init__(self, port, host, cafile, settings=None):
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        assert self.sock.selected_alpn_protocol() == "h2", "the listener did not negotiate h2"
        self.host = host
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buffer = b""
        self.server_settings = {}
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.send(hf.SettingsFrame(0, settings=settings or {}))
        # The server's SETTINGS comes first; ACK it, then wait for the ACK of ours.
        acked = False
        deadline = time.monotonic() + 10
        while not acked or not self.server_settings:
            frame = self.read_frame(deadline - time.monotonic())
            if frame is None:
                raise ConnectionError("the server closed during the preface")
            if isinstance(frame, hf.SettingsFrame):
                if "ACK" in frame.flags:
                    acked = True
                else:
                    self.server_settings = dict(frame.settings) or {"none": 0}
                    self.send(hf.SettingsFrame(0, flags=["ACK"]))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, frame):
        self.sock.sendall(frame.serialize() if not isinstance(frame, bytes) else frame)

    def header_block(self, headers):
        return self.encoder.encode(headers)

    def request_headers(self, method="GET", path="/small.html", extra=(), authority=None):
        return [(":method", method), (":scheme", "https"), (":path", path),
                (":authority", authority or self.host), *extra]

    def headers(self, stream, headers, end_stream=True, end_headers=True):
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        frame = hf.HeadersFrame(stream, self.header_block(headers), flags=flags)
        self.send(frame)

    def read_frame(self, timeout):
        """The next frame, or None when the server closed the connection."""
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    header, body = self.buffer[:9], self.buffer[9:9 + length]
                    self.buffer = self.buffer[9 + length:]
                    frame, length = hf.Frame.parse_frame_header(memoryview(header))
                    frame.parse_body(memoryview(body))
                    return frame
            self.sock.settimeout(max(timeout, 0.01))
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buffer += data

    def _note(self, frame, result):
        """Records `frame` in `result`; decodes header blocks (HPACK state), answers PINGs.
        Returns the header fields when `frame` carried some."""
        result.frames.append(frame)
        if isinstance(frame, hf.GoAwayFrame):
            result.goaway = frame.error_code
        elif isinstance(frame, hf.RstStreamFrame):
            result.resets[frame.stream_id] = frame.error_code
        elif isinstance(frame, hf.HeadersFrame):
            return self.decoder.decode(frame.data)
        elif isinstance(frame, hf.PingFrame) and "ACK" not in frame.flags:
            self.send(hf.PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]))
        return []

    def outcome(self, timeout=2.0, until=None):
        """Reads what the server sends until it closes, `until(outcome)` holds, or `timeout`
        passes quietly."""
        result = Outcome()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = self.read_frame(deadline - time.monotonic())
            except socket.timeout:
                break
            if frame is None:
                result.closed = True
                break
            self._note(frame, result)
            if until is not None and until(result):
                break
        return result

    def response(self, stream, timeout=5.0):
        """(headers, body, outcome) of the response on `stream`, read until it ends."""
        headers, body = [], b""
        result = Outcome()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.read_frame(deadline - time.monotonic())
            if frame is None:
                result.closed = True
                break
            fields = self._note(frame, result)
            if result.goaway is not None or stream in result.resets:
                break
            if frame.stream_id != stream:
                continue
            headers += fields
            if isinstance(frame, hf.DataFrame):
                body += frame.data
            if "END_STREAM" in frame.flags:
                break
        return headers, body, result
