#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/seeds/ (committed; re-run after changing the formats).

sip_message: the RFC 4475 messages of crates/sip-proxy/tests/data/rfc4475/ and SIPp-like
INVITE, ACK, BYE, CANCEL, OPTIONS, responses.
proxy_core: the same messages as one datagram from the UDP phone (control byte 0x01), and
dialogs as record sequences (see fuzz_targets/proxy_core.rs for the format).
ils_frame: a few hand-encoded replication frames.
"""
import os
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
RFC4475 = HERE.parent / "crates/sip-proxy/tests/data/rfc4475"


def crlf(text):
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n"


def msg(start, headers, body=""):
    body_b = body.replace("\n", "\r\n").encode()
    head = start + "\n" + headers.strip("\n") + f"\nContent-Length: {len(body_b)}"
    return crlf(head) + body_b


SDP = "v=0\no=user1 53655765 2353687637 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"


def request(method, uri, cseq, branch, *, to_tag=None, route=None, mf="70", body="", call="1-fuzz@192.0.2.10", via="SIP/2.0/UDP 192.0.2.10:5060", extra=""):
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [f"Via: {via};branch={branch};rport"]
    if mf is not None:
        lines.append(f"Max-Forwards: {mf}")
    if route:
        lines.append(f"Route: {route}")
    lines += [
        "From: sipp <sip:sipp@192.0.2.10:5060>;tag=1SIPpTag001",
        f"To: {to}",
        f"Call-ID: {call}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:sipp@192.0.2.10:5060>",
        "Subject: Performance Test",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    if extra:
        lines.append(extra)
    return msg(f"{method} {uri} SIP/2.0", "\n".join(lines), body)


ALICE = "sip:alice@hq.example.com"
RR = "<sip:203.0.113.1:5060;lr>"
CONTACT = "sip:callee@198.51.100.1:5060"

INVITE = request("INVITE", ALICE, 1, "z9hG4bK-1-0", body=SDP)
ACK_2XX = request("ACK", CONTACT, 1, "z9hG4bK-1-2", to_tag="fuzztag", route=RR)
BYE = request("BYE", CONTACT, 2, "z9hG4bK-1-3", to_tag="fuzztag", route=RR)
CANCEL = request("CANCEL", ALICE, 1, "z9hG4bK-1-0")
ACK_487 = request("ACK", ALICE, 1, "z9hG4bK-1-0", to_tag="fuzztag")
OPTIONS_EDGE = request("OPTIONS", "sip:edge.example.com", 1, "z9hG4bK-o-1", call="o@192.0.2.10")
UNKNOWN = request("INVITE", "sip:unknown@hq.example.com", 1, "z9hG4bK-u-1", call="u@192.0.2.10")
NOWHERE = request("INVITE", "sip:nowhere@hq.example.com", 1, "z9hG4bK-n-1", call="n@192.0.2.10")
MF0 = request("INVITE", ALICE, 1, "z9hG4bK-m-1", mf="0", call="m@192.0.2.10")
NO_MF = request("MESSAGE", ALICE, 1, "z9hG4bK-x-1", mf=None, call="x@192.0.2.10", body="hello")
TCP_INVITE = request("INVITE", ALICE, 1, "z9hG4bK-t-1", call="t@192.0.2.11", via="SIP/2.0/TCP 192.0.2.11:40000")
TLS_INVITE = request("INVITE", ALICE, 1, "z9hG4bK-s-1", call="s@192.0.2.12", via="SIP/2.0/TLS 192.0.2.12:40001")
REQUIRE = request("INVITE", ALICE, 1, "z9hG4bK-r-1", call="r@192.0.2.10", extra="Proxy-Require: foo")
LOOSE = request("INVITE", ALICE, 1, "z9hG4bK-l-1", call="l@192.0.2.10", route="<sip:203.0.113.1;lr>, <sip:198.51.100.1:5060;lr>")
STRICT = request("INVITE", "sip:203.0.113.1:5060", 1, "z9hG4bK-z-1", call="z@192.0.2.10", route="<sip:alice@198.51.100.1:5060>")
DEST_ROUTE = request("INVITE", "sip:bob@hq.example.com", 1, "z9hG4bK-d-1", call="d@192.0.2.10", extra="X-cisco-dest-route-string: <sip:hq.route>")
SUBSCRIBE = request("SUBSCRIBE", ALICE, 1, "z9hG4bK-b-1", call="b@192.0.2.10", extra="Event: presence\nExpires: 60")
RESPONSE_2VIA = crlf("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKie0000;rport=5060, SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1-0;rport=5060;received=192.0.2.10
Record-Route: <sip:203.0.113.1:5060;lr>
From: sipp <sip:sipp@192.0.2.10:5060>;tag=1SIPpTag001
To: <sip:alice@hq.example.com>;tag=fuzztag
Call-ID: 1-fuzz@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:callee@198.51.100.1:5060>
Content-Length: 0""")
RINGING_COMPACT = crlf("""SIP/2.0 180 Ringing
v: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKie0000
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1-0
f: <sip:sipp@192.0.2.10>;tag=1
t: <sip:alice@hq.example.com>;tag=2
i: 1-fuzz@192.0.2.10
CSeq: 1 INVITE
l: 0""")

MESSAGES = {
    "invite": INVITE, "ack-2xx": ACK_2XX, "bye": BYE, "cancel": CANCEL, "ack-487": ACK_487,
    "options-edge": OPTIONS_EDGE, "invite-unknown": UNKNOWN, "invite-nowhere": NOWHERE,
    "invite-mf0": MF0, "message-no-mf": NO_MF, "invite-tcp": TCP_INVITE, "invite-tls": TLS_INVITE,
    "invite-proxy-require": REQUIRE, "invite-loose-route": LOOSE, "invite-strict-route": STRICT,
    "invite-dest-route": DEST_ROUTE, "subscribe": SUBSCRIBE, "response-200-two-vias": RESPONSE_2VIA,
    "response-180-compact": RINGING_COMPACT,
}

# proxy_core control bytes: op << 5 | step << 3 | peer.
UDP_PHONE, TCP_PHONE, TLS_PHONE, DEST1, DEST2, STRANGER, EDGE = 1, 2, 3, 4, 5, 6, 7
STEP_20MS, STEP_700MS, STEP_33S = 1 << 3, 2 << 3, 3 << 3
ANSWER, TRANSPORT_ERROR, PING, ECHO = 4 << 5, 5 << 5, 6 << 5, 7 << 5


def status(code, idx=0x40):
    """An answer record: index byte, then a big-endian code giving `code` with no NUL byte."""
    n = code - 100
    while (n >> 8) == 0 or (n & 0xFF) == 0:
        n += 600
    return bytes([idx, n >> 8, n & 0xFF])


def seq(*records):
    return b"\0".join(bytes([ctl]) + payload for ctl, payload in records)


SEQUENCES = {
    "call": seq((UDP_PHONE, INVITE), (ANSWER, status(180)), (ANSWER, status(200)),
                (UDP_PHONE | STEP_20MS, ACK_2XX), (UDP_PHONE | STEP_700MS, BYE), (ANSWER, status(200, 0x42))),
    "call-retransmit": seq((UDP_PHONE, INVITE), (UDP_PHONE | STEP_700MS, INVITE), (ANSWER, status(100)),
                           (ANSWER, status(200)), (ANSWER | STEP_20MS, status(200)), (UDP_PHONE, ACK_2XX)),
    "failover-timeout": seq((UDP_PHONE, INVITE), (UDP_PHONE | STEP_700MS, b""), (UDP_PHONE | STEP_700MS, b""),
                            (ANSWER, status(503, 0x41)), (UDP_PHONE | STEP_33S, ACK_487)),
    "failover-503": seq((UDP_PHONE, INVITE), (ANSWER, status(503)), (ANSWER, status(486, 0x41)), (UDP_PHONE, ACK_487)),
    "transport-error": seq((TCP_PHONE, TCP_INVITE), (TRANSPORT_ERROR, b""), (TRANSPORT_ERROR, b""), (ANSWER, status(200))),
    "cancel": seq((UDP_PHONE, INVITE), (ANSWER, status(180)), (UDP_PHONE | STEP_20MS, CANCEL),
                  (ANSWER, status(200, 0x41)), (ANSWER, status(487)), (UDP_PHONE, ACK_487)),
    "cancel-early": seq((UDP_PHONE, INVITE), (UDP_PHONE, CANCEL), (UDP_PHONE | STEP_33S, b"")),
    "options-edge": seq((UDP_PHONE, OPTIONS_EDGE), (TLS_PHONE, OPTIONS_EDGE)),
    "reject": seq((UDP_PHONE, UNKNOWN), (UDP_PHONE, ACK_487), (UDP_PHONE, MF0), (UDP_PHONE, REQUIRE), (UDP_PHONE, NOWHERE)),
    "ping": seq((PING | DEST1, b""), (ANSWER, status(200)), (PING | DEST2, b""), (DEST2 | STEP_33S, b"")),
    "echo-loop": seq((UDP_PHONE, INVITE), (ECHO | EDGE, b""), (ECHO | DEST1, b"")),
    "stray-response": seq((DEST1, RESPONSE_2VIA), (DEST1, RINGING_COMPACT)),
    "tls-call": seq((TLS_PHONE, TLS_INVITE), (ANSWER, status(486)), (TLS_PHONE, ACK_487)),
    "message": seq((UDP_PHONE, NO_MF), (ANSWER, status(202)), (UDP_PHONE, SUBSCRIBE), (ANSWER, status(200, 0x41))),
    "routes": seq((UDP_PHONE, LOOSE), (UDP_PHONE, STRICT), (UDP_PHONE, DEST_ROUTE), (ANSWER, status(200))),
}


def frame(tag, body=b""):
    envelope = bytes([(tag << 3) | 2, len(body)]) + body
    return len(envelope).to_bytes(4, "big") + envelope


def string_field(num, s):
    b = s.encode()
    return bytes([(num << 3) | 2, len(b)]) + b


def varint_field(num, v):
    out = bytes([num << 3])
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


FRAMES = {
    "keepalive": frame(13),
    "goodbye": frame(14, string_field(2, "bye")),
    "hello": frame(1, varint_field(1, 1) + string_field(2, "BR") + string_field(3, "br.example.com")),
    "records": frame(7, varint_field(1, 1) + string_field(2, "BR") + string_field(3, "br.route")
                     + string_field(4, string_field(2, "bob@br.example.com").decode())),
    "ack": frame(8, varint_field(1, 3)),
    "two-frames": frame(13) + frame(8, varint_field(1, 1)),
    "unknown-type": frame(31, b""),
}


def write(target, name, data):
    d = HERE / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    for p in sorted(RFC4475.glob("*.sip")):
        data = p.read_bytes()
        write("sip_message", "rfc4475-" + p.stem, data)
        if b"\0" not in data:
            write("proxy_core", "rfc4475-" + p.stem, bytes([UDP_PHONE]) + data)
    for name, data in MESSAGES.items():
        write("sip_message", name, data)
        write("proxy_core", "one-" + name, bytes([UDP_PHONE]) + data)
    for name, data in SEQUENCES.items():
        write("proxy_core", name, data)
    for name, data in FRAMES.items():
        write("ils_frame", name, data)


if __name__ == "__main__":
    main()
