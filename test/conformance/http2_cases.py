"""HTTP/2 server conformance cases (RFC 9113, RFC 7541), each one rule of the RFC.

A case takes an H2Wire connected to the listener and returns None when the server followed
the rule, or what it did instead. `CASES` maps "section/name" to the case."""

from hyperframe import frame as hf

from test.conformance import h2wire as w
from test.conformance.h2wire import raw_frame

CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def connection_error(wire, code, timeout=3.0):
    """RFC 9113 §5.4.1: GOAWAY with `code`, then the connection closes."""
    outcome = wire.outcome(timeout, until=lambda o: o.closed)
    if outcome.goaway == code:
        return None
    return f"expected GOAWAY {w.ERROR_NAMES[code]}, got {outcome.describe()}"


def stream_error(wire, stream, code, timeout=3.0):
    """§5.4.2 stream error of type `code`; a connection error of that type is also allowed
    (§5.4.1: an endpoint may treat a stream error as a connection error)."""
    outcome = wire.outcome(timeout, until=lambda o: stream in o.resets or o.goaway is not None)
    if outcome.resets.get(stream) == code or outcome.goaway == code:
        return None
    return f"expected RST_STREAM({stream}) or GOAWAY {w.ERROR_NAMES[code]}, got {outcome.describe()}"


def still_works(wire, stream):
    """The connection still serves a request (after something the server must ignore)."""
    wire.headers(stream, wire.request_headers())
    headers, body, outcome = wire.response(stream)
    if (":status", "200") in headers:
        return None
    return f"expected a 200 on stream {stream}, got {headers} {outcome.describe()}"


def ping_acked(wire):
    wire.send(hf.PingFrame(0, opaque_data=b"12345678"))
    outcome = wire.outcome(3.0, until=lambda o: any(
        isinstance(f, hf.PingFrame) and "ACK" in f.flags for f in o.frames))
    if any(isinstance(f, hf.PingFrame) and "ACK" in f.flags for f in outcome.frames):
        return None
    return "expected a PING ACK, got " + outcome.describe()


def complete_request(wire, stream):
    wire.headers(stream, wire.request_headers())
    headers, _, outcome = wire.response(stream)
    return headers


# ---- §5.1 stream states -------------------------------------------------------------------

@case("5.1/idle: DATA on an idle stream")
def _(wire):
    wire.send(hf.DataFrame(1, b"x", flags=["END_STREAM"]))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1/idle: RST_STREAM on an idle stream")
def _(wire):
    wire.send(hf.RstStreamFrame(1, error_code=0x8))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1/idle: WINDOW_UPDATE on an idle stream")
def _(wire):
    wire.send(hf.WindowUpdateFrame(1, window_increment=100))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1/idle: CONTINUATION on an idle stream")
def _(wire):
    wire.send(raw_frame(0x9, 0x4, 1, wire.header_block(wire.request_headers())))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1/half-closed (remote): DATA after END_STREAM")
def _(wire):
    # The backend takes its time (a missing page is quick too), so the stream is still
    # half-closed when the DATA arrives; STREAM_CLOSED either way.
    wire.headers(1, wire.request_headers())
    wire.send(hf.DataFrame(1, b"x"))
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/half-closed (remote): HEADERS after END_STREAM")
def _(wire):
    wire.headers(1, wire.request_headers())
    wire.headers(1, [("x-trailer", "1")])
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/closed: DATA on a closed stream")
def _(wire):
    complete_request(wire, 1)
    wire.send(hf.DataFrame(1, b"x"))
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/closed: HEADERS on a closed stream")
def _(wire):
    complete_request(wire, 1)
    wire.headers(1, wire.request_headers())
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/closed: DATA after RST_STREAM")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.RstStreamFrame(1, error_code=0x8))
    wire.send(hf.DataFrame(1, b"x"))
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/closed: HEADERS after RST_STREAM")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.RstStreamFrame(1, error_code=0x8))
    wire.headers(1, [("x-trailer", "1")])
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("5.1/closed: WINDOW_UPDATE and PRIORITY after the stream closed are allowed")
def _(wire):
    complete_request(wire, 1)
    wire.send(hf.WindowUpdateFrame(1, window_increment=1))
    wire.send(hf.PriorityFrame(1, depends_on=0, stream_weight=15))
    return still_works(wire, 3)


@case("5.1.1/a stream id lower than one already opened")
def _(wire):
    wire.headers(5, wire.request_headers())
    wire.response(5)
    wire.headers(3, wire.request_headers())
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1.1/an even stream id from the client")
def _(wire):
    wire.headers(2, wire.request_headers())
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("5.1.2/streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused")
def _(wire):
    limit = wire.server_settings.get(hf.SettingsFrame.MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        return None  # no limit worth opening that many streams for
    for i in range(limit + 1):
        wire.headers(1 + 2 * i, wire.request_headers(method="POST"), end_stream=False)
    last = 1 + 2 * limit
    outcome = wire.outcome(3.0, until=lambda o: last in o.resets or o.goaway is not None)
    if outcome.resets.get(last) in (w.REFUSED_STREAM, w.PROTOCOL_ERROR) or \
            outcome.goaway == w.PROTOCOL_ERROR:
        return None
    return "expected the stream over the limit refused, got " + outcome.describe()


# ---- §5.5, §6 frames ---------------------------------------------------------------------

@case("5.5/an unknown frame type is ignored")
def _(wire):
    wire.send(raw_frame(0x42, 0, 0, b"whatever"))
    return ping_acked(wire)


@case("5.5/an unknown setting is ignored")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, (0x99).to_bytes(2, "big") + (7).to_bytes(4, "big")))
    outcome = wire.outcome(3.0, until=lambda o: any(
        isinstance(f, hf.SettingsFrame) and "ACK" in f.flags for f in o.frames))
    if any(isinstance(f, hf.SettingsFrame) and "ACK" in f.flags for f in outcome.frames):
        return None
    return "expected a SETTINGS ACK, got " + outcome.describe()


@case("4.2/a frame over SETTINGS_MAX_FRAME_SIZE")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(raw_frame(0x0, 0x1, 1, b"x" * 16385))
    return stream_error(wire, 1, w.FRAME_SIZE_ERROR)


@case("6.1/DATA on stream 0")
def _(wire):
    wire.send(raw_frame(0x0, 0x1, 0, b"x"))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.1/DATA padding longer than the frame")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(raw_frame(0x0, 0x8 | 0x1, 1, bytes([10]) + b"abc"))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.1/DATA beyond content-length")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST", extra=[("content-length", "1")]),
                 end_stream=False)
    wire.send(hf.DataFrame(1, b"too long", flags=["END_STREAM"]))
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


@case("6.2/HEADERS on stream 0")
def _(wire):
    wire.send(raw_frame(0x1, 0x5, 0, wire.header_block(wire.request_headers())))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.2/HEADERS padding longer than the frame")
def _(wire):
    block = wire.header_block(wire.request_headers())
    wire.send(raw_frame(0x1, 0x8 | 0x5, 1, bytes([len(block) + 5]) + block))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.3/PRIORITY with a length other than 5")
def _(wire):
    wire.send(raw_frame(0x2, 0, 1, b"\x00\x00\x00\x00"))
    return stream_error(wire, 1, w.FRAME_SIZE_ERROR)


@case("6.3/PRIORITY on stream 0")
def _(wire):
    wire.send(raw_frame(0x2, 0, 0, b"\x00\x00\x00\x01\x10"))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.4/RST_STREAM on stream 0")
def _(wire):
    wire.send(raw_frame(0x3, 0, 0, (8).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.4/RST_STREAM with a length other than 4")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(raw_frame(0x3, 0, 1, b"\x00\x00\x00"))
    return connection_error(wire, w.FRAME_SIZE_ERROR)


@case("6.5/SETTINGS ACK with a payload")
def _(wire):
    wire.send(raw_frame(0x4, 0x1, 0, b"\x00\x01\x00\x00\x10\x00"))
    return connection_error(wire, w.FRAME_SIZE_ERROR)


@case("6.5/SETTINGS on a stream")
def _(wire):
    wire.send(raw_frame(0x4, 0, 1, b""))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.5/SETTINGS with a length not a multiple of 6")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, b"\x00\x01\x00\x00\x10"))
    return connection_error(wire, w.FRAME_SIZE_ERROR)


@case("6.5.2/SETTINGS_ENABLE_PUSH other than 0 or 1")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, (0x2).to_bytes(2, "big") + (2).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.5.2/SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, (0x4).to_bytes(2, "big") + (2**31).to_bytes(4, "big")))
    return connection_error(wire, w.FLOW_CONTROL_ERROR)


@case("6.5.2/SETTINGS_MAX_FRAME_SIZE below 16384")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, (0x5).to_bytes(2, "big") + (16383).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.5.2/SETTINGS_MAX_FRAME_SIZE over 2^24-1")
def _(wire):
    wire.send(raw_frame(0x4, 0, 0, (0x5).to_bytes(2, "big") + (2**24).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.7/PING is answered with the same payload")
def _(wire):
    return ping_acked(wire)


@case("6.7/PING on a stream")
def _(wire):
    wire.send(raw_frame(0x6, 0, 1, b"12345678"))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.7/PING with a length other than 8")
def _(wire):
    wire.send(raw_frame(0x6, 0, 0, b"1234567"))
    return connection_error(wire, w.FRAME_SIZE_ERROR)


@case("6.8/GOAWAY on a stream")
def _(wire):
    wire.send(raw_frame(0x7, 0, 1, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


# ---- §6.9 flow control -------------------------------------------------------------------

@case("6.9/WINDOW_UPDATE of 0 on the connection")
def _(wire):
    wire.send(raw_frame(0x8, 0, 0, (0).to_bytes(4, "big")))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.9/WINDOW_UPDATE of 0 on a stream")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(raw_frame(0x8, 0, 1, (0).to_bytes(4, "big")))
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


@case("6.9/WINDOW_UPDATE with a length other than 4")
def _(wire):
    wire.send(raw_frame(0x8, 0, 0, b"\x00\x00\x01"))
    return connection_error(wire, w.FRAME_SIZE_ERROR)


@case("6.9.1/connection window over 2^31-1")
def _(wire):
    wire.send(hf.WindowUpdateFrame(0, window_increment=2**31 - 1))
    return connection_error(wire, w.FLOW_CONTROL_ERROR)


@case("6.9.1/stream window over 2^31-1")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.WindowUpdateFrame(1, window_increment=2**31 - 1))
    return stream_error(wire, 1, w.FLOW_CONTROL_ERROR)


@case("6.9.2/SETTINGS_INITIAL_WINDOW_SIZE pushing a stream window over 2^31-1")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.WindowUpdateFrame(1, window_increment=2**31 - 1 - 65535))
    wire.send(raw_frame(0x4, 0, 0, (0x4).to_bytes(2, "big") + (65536).to_bytes(4, "big")))
    return connection_error(wire, w.FLOW_CONTROL_ERROR)


# ---- §6.10 CONTINUATION ------------------------------------------------------------------

@case("6.10/CONTINUATION after END_HEADERS")
def _(wire):
    block = wire.header_block(wire.request_headers(method="POST"))
    wire.send(raw_frame(0x1, 0x4, 1, block))
    wire.send(raw_frame(0x9, 0x4, 1, wire.header_block([("x-more", "1")])))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.10/another frame between HEADERS and CONTINUATION")
def _(wire):
    block = wire.header_block(wire.request_headers())
    wire.send(raw_frame(0x1, 0x1, 1, block[:5]))
    wire.send(raw_frame(0x0, 0, 1, b"x"))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.10/CONTINUATION on another stream")
def _(wire):
    block = wire.header_block(wire.request_headers())
    wire.send(raw_frame(0x1, 0x1, 1, block[:5]))
    wire.send(raw_frame(0x9, 0x4, 3, block[5:]))
    return connection_error(wire, w.PROTOCOL_ERROR)


@case("6.10/a header block split over CONTINUATION frames is served")
def _(wire):
    block = wire.header_block(wire.request_headers())
    wire.send(raw_frame(0x1, 0x1, 1, block[:3]))
    wire.send(raw_frame(0x9, 0, 1, block[3:6]))
    wire.send(raw_frame(0x9, 0x4, 1, block[6:]))
    headers, _, outcome = wire.response(1)
    return None if (":status", "200") in headers else f"got {headers} {outcome.describe()}"


# ---- RFC 7541 HPACK ----------------------------------------------------------------------

@case("hpack/an index beyond the tables")
def _(wire):
    wire.send(raw_frame(0x1, 0x5, 1, b"\xff\x7f"))  # indexed field 254: no such entry
    return connection_error(wire, w.COMPRESSION_ERROR)


@case("hpack/a dynamic table size update over SETTINGS_HEADER_TABLE_SIZE")
def _(wire):
    # 0x3f e1 1f: size update to 4096+... = 8191 octets, above the 4096 default the server set.
    block = b"\x3f\xe1\x3f" + wire.header_block(wire.request_headers())
    wire.send(raw_frame(0x1, 0x5, 1, block))
    return connection_error(wire, w.COMPRESSION_ERROR)


@case("hpack/a size update after the first field")
def _(wire):
    block = wire.header_block(wire.request_headers()) + b"\x20"
    wire.send(raw_frame(0x1, 0x5, 1, block))
    return connection_error(wire, w.COMPRESSION_ERROR)


# ---- §8.2, §8.3 fields -------------------------------------------------------------------

def malformed(wire, headers, end_stream=True):
    """§8.1.1: a malformed request is a stream error PROTOCOL_ERROR."""
    block = wire.header_block(headers)
    wire.send(raw_frame(0x1, 0x4 | (0x1 if end_stream else 0), 1, block))
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


@case("8.2/an upper-case field name")
def _(wire):
    return malformed(wire, wire.request_headers(extra=[("X-Upper", "1")]))


@case("8.2.1/a field value with a NUL")
def _(wire):
    return malformed(wire, wire.request_headers(extra=[("x-bad", "a\x00b")]))


@case("8.2.2/a connection-specific field (connection)")
def _(wire):
    return malformed(wire, wire.request_headers(extra=[("connection", "keep-alive")]))


@case("8.2.2/a connection-specific field (transfer-encoding)")
def _(wire):
    return malformed(wire, wire.request_headers(extra=[("transfer-encoding", "chunked")]))


@case("8.2.2/TE other than trailers")
def _(wire):
    return malformed(wire, wire.request_headers(extra=[("te", "gzip")]))


@case("8.2.2/TE: trailers is served")
def _(wire):
    wire.headers(1, wire.request_headers(extra=[("te", "trailers")]))
    headers, _, outcome = wire.response(1)
    return None if (":status", "200") in headers else f"got {headers} {outcome.describe()}"


@case("8.3/an unknown pseudo-header")
def _(wire):
    return malformed(wire, [(":foo", "bar")] + wire.request_headers())


@case("8.3/a response pseudo-header in a request")
def _(wire):
    return malformed(wire, [(":status", "200")] + wire.request_headers())


@case("8.3/a pseudo-header after a regular field")
def _(wire):
    headers = wire.request_headers()
    return malformed(wire, headers[:3] + [("x-a", "1"), headers[3]])


@case("8.3/a pseudo-header twice")
def _(wire):
    headers = wire.request_headers()
    return malformed(wire, headers[:3] + [(":path", "/again")] + headers[3:])


@case("8.3/a pseudo-header in trailers")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.DataFrame(1, b"x"))
    block = wire.header_block([(":path", "/trailer")])
    wire.send(raw_frame(0x1, 0x5, 1, block))
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


@case("8.3.1/no :method")
def _(wire):
    return malformed(wire, [h for h in wire.request_headers() if h[0] != ":method"])


@case("8.3.1/no :scheme")
def _(wire):
    return malformed(wire, [h for h in wire.request_headers() if h[0] != ":scheme"])


@case("8.3.1/no :path")
def _(wire):
    return malformed(wire, [h for h in wire.request_headers() if h[0] != ":path"])


@case("8.3.1/an empty :path")
def _(wire):
    return malformed(wire, [(k, "" if k == ":path" else v) for k, v in wire.request_headers()])


@case("8.1/a second HEADERS without END_STREAM")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.DataFrame(1, b"x"))
    wire.headers(1, [("x-trailer", "1")], end_stream=False)
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


@case("8.1/a request with a body and trailers is served")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.DataFrame(1, b"body"))
    wire.headers(1, [("x-checksum", "1")], end_stream=True)
    headers, _, outcome = wire.response(1)
    return None if (":status", "200") in headers else f"got {headers} {outcome.describe()}"


@case("8.1/trailers after the client reset the stream are not forwarded")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST"), end_stream=False)
    wire.send(hf.DataFrame(1, b"body"))
    wire.send(hf.RstStreamFrame(1, error_code=0x8))
    wire.headers(3, wire.request_headers(method="POST"), end_stream=False)
    wire.headers(1, [("x-late", "1")], end_stream=True)
    return stream_error(wire, 1, w.STREAM_CLOSED)


@case("8.1.1/content-length and DATA disagree")
def _(wire):
    wire.headers(1, wire.request_headers(method="POST", extra=[("content-length", "10")]),
                 end_stream=False)
    wire.send(hf.DataFrame(1, b"short", flags=["END_STREAM"]))
    return stream_error(wire, 1, w.PROTOCOL_ERROR)


# ---- RFC 9110 §9.3.2 HEAD ----------------------------------------------------------------

@case("9110-9.3.2/HEAD gets headers and no body")
def _(wire):
    wire.headers(1, wire.request_headers(method="HEAD"))
    headers, body, outcome = wire.response(1)
    if (":status", "200") not in headers or body or 1 in outcome.resets:
        return f"got {headers} body {len(body)} bytes {outcome.describe()}"
    return None


@case("9110-9.3.2/HEAD whose backend wrongly sends a body: headers, no body, no reset")
def _(wire):
    # nghttpd answers a missing page with a body, also to HEAD.
    wire.headers(1, wire.request_headers(method="HEAD", path="/missing"))
    headers, body, outcome = wire.response(1)
    if (":status", "404") not in headers or body or 1 in outcome.resets:
        return f"got {headers} body {len(body)} bytes {outcome.describe()}"
    return still_works(wire, 3)
