#!/usr/bin/env python3
"""Writes test/fuzz/corpus/proxy_protocol/: one file per rule of HAProxy's
doc/proxy-protocol.txt. The name says what the parser must answer:
valid_* (kDone), invalid_* (kInvalid), partial_* (kNeedMoreData). Re-run after adding a case."""

import os
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def v2(cmd=1, fam=1, proto=1, body=None, tlvs=b"", length=None, version=2):
    if body is None:
        body = {1: bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack(">HH", 40000, 443),
                2: bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 40000, 443),
                3: b"/tmp/src".ljust(108, b"\0") + b"/tmp/dst".ljust(108, b"\0"),
                0: b""}[fam]
    payload = body + tlvs
    if length is None:
        length = len(payload)
    return SIG + bytes([(version << 4) | cmd, (fam << 4) | proto]) + struct.pack(">H", length) + payload


def v2_with_crc(good=True):
    placeholder = tlv(0x03, b"\0\0\0\0")
    header = v2(tlvs=tlv(0x02, b"a.test") + placeholder)
    crc = crc32c(header)
    if not good:
        crc ^= 1
    return header[:-4] + struct.pack(">I", crc)


CASES = {
    # v1
    "valid_v1_tcp4": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    "valid_v1_tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n",
    "valid_v1_unknown": b"PROXY UNKNOWN\r\n",
    "valid_v1_unknown_with_addresses": b"PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n",
    "valid_v1_port_zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 0 443\r\n",
    "valid_v1_max_length": b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                           b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    "valid_v1_followed_by_payload": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\x16\x03\x01",
    "partial_v1_prefix": b"PRO",
    "partial_v1_no_crlf_yet": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
    "invalid_v1_overlong": b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
    "invalid_v1_lf_only": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "invalid_v1_bad_protocol": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "invalid_v1_lowercase": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "invalid_v1_leading_zero_port": b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "invalid_v1_port_too_big": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "invalid_v1_port_sign": b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
    "invalid_v1_leading_zero_ip": b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    "invalid_v1_ipv6_in_tcp4": b"PROXY TCP4 ::1 ::1 1 2\r\n",
    "invalid_v1_ipv4_in_tcp6": b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    "invalid_v1_double_space": b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    "invalid_v1_missing_field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "invalid_v1_extra_field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    "invalid_v1_trailing_space": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    "invalid_v1_unknownx": b"PROXY UNKNOWNX\r\n",
    # v2
    "valid_v2_inet": v2(),
    "valid_v2_inet6": v2(fam=2),
    "valid_v2_unix": v2(fam=3),
    "valid_v2_local": v2(cmd=0, fam=0, proto=0),
    "valid_v2_local_with_inet_block": v2(cmd=0),
    "valid_v2_unspec_family": v2(fam=0, proto=0),
    "valid_v2_tlvs": v2(tlvs=tlv(0x01, b"h2") + tlv(0x02, b"a.test") + tlv(0x05, b"id-1") +
                        tlv(0x04, b"") + tlv(0xe0, b"custom")),
    "valid_v2_crc32c": v2_with_crc(True),
    "valid_v2_unique_id_128": v2(tlvs=tlv(0x05, b"u" * 128)),
    "valid_v2_followed_by_payload": v2() + b"\x16\x03\x01\x02\x00",
    "partial_v2_signature": SIG[:7],
    "partial_v2_fixed_header": v2()[:14],
    "partial_v2_body": v2(tlvs=tlv(0x02, b"a.test"))[:-3],
    "invalid_v2_bad_signature": b"\r\n\r\n\x00\r\nQUIX\n" + v2()[12:],
    "invalid_v2_version_1": v2(version=1),
    "invalid_v2_version_3": v2(version=3),
    "invalid_v2_command_2": v2(cmd=2),
    "invalid_v2_family_4": v2(fam=4, body=bytes(12)),
    "invalid_v2_transport_3": v2(proto=3),
    "invalid_v2_dgram": v2(proto=2),
    "invalid_v2_proxy_unspec_transport": v2(proto=0),
    "invalid_v2_inet_length_short": v2(length=11, body=bytes(11)),
    "invalid_v2_inet6_length_short": v2(fam=2, length=35, body=bytes(35)),
    "invalid_v2_unix_length_short": v2(fam=3, length=215, body=bytes(215)),
    "invalid_v2_tlv_overrun": v2(tlvs=bytes([0x02]) + struct.pack(">H", 50) + b"short"),
    "invalid_v2_tlv_underrun": v2(tlvs=b"\x02\x00"),
    "invalid_v2_crc32c_mismatch": v2_with_crc(False),
    "invalid_v2_crc32c_wrong_size": v2(tlvs=tlv(0x03, b"\0\0\0")),
    "invalid_v2_unique_id_129": v2(tlvs=tlv(0x05, b"u" * 129)),
    "invalid_garbage": b"GET / HTTP/1.1\r\n\r\n",
    "invalid_tls_without_header": b"\x16\x03\x01\x02\x00\x01",
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "test", "fuzz", "corpus", "proxy_protocol")
os.makedirs(out, exist_ok=True)
for name, data in CASES.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(CASES)} files in {out}")
