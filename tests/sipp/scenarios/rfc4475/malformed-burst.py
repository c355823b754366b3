#!/usr/bin/env python3
"""Send a burst of malformed SIP datagrams and count the 400 answers.

RFC 4475 (SIP torture test messages), section 3.1.2 (invalid messages): a proxy that receives
a request it cannot parse answers 400 Bad Request when it can form a response (a usable Via
and the headers a response copies), otherwise it drops the datagram, and in both cases it
keeps serving. RFC 3261 section 8.2.2 / 16.3 (request validation), 18.3 (Content-Length on
datagrams), 20.16 (Content-Length).

Each message kind below is marked `answerable` (a 400 is expected) or not (garbage: a drop is
fine, a 400 is tolerated). The script sends ROUNDS rounds of every kind, each with a fresh
branch and Call-ID, at most RATE datagrams per second, then collects answers for WAIT seconds.
It prints one summary line:

    sent=<n> answerable=<n> responses=<n> 400=<n> other=<codes> per_kind=<kind:400s,...>

and exits 0 when the number of 400 answers is at least --min-400 (default: every answerable
message sent, i.e. all of them answered), 1 otherwise.

    malformed-burst.py --target 127.0.2.1:5060 --bind 127.0.2.20 --rounds 20
"""

import argparse
import collections
import re
import socket
import sys
import time

CRLF = "\r\n"


def base_headers(kind, n, local, target_host):
    """The headers of a well-formed INVITE; each torture kind then breaks one thing."""
    lhost, lport = local
    return [
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bKtorture{kind}{n};rport",
        f"From: <sip:torture@{lhost}>;tag=t{n}",
        "To: <sip:alice@hq.example.com>",
        f"Call-ID: torture-{kind}-{n}@{lhost}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:torture@{lhost}:{lport}>",
        "Max-Forwards: 70",
    ]


def build(kind, n, local, target_host):
    """Returns (bytes, answerable) for one message of the given kind."""
    ruri = "sip:alice@hq.example.com"
    h = base_headers(kind, n, local, target_host)
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"

    def msg(headers, body_text="", start=f"INVITE {ruri} SIP/2.0"):
        return (start + CRLF + CRLF.join(headers) + CRLF + CRLF + body_text).encode()

    if kind == "clen-too-big":  # RFC 4475 3.1.2.7 (clerr): Content-Length past the datagram
        return msg(h + ["Content-Type: application/sdp", f"Content-Length: {len(body) + 1000}"], body), True
    if kind == "clen-negative":  # RFC 4475 3.1.2.8 (ncl): negative Content-Length
        return msg(h + ["Content-Type: application/sdp", "Content-Length: -999"], body), True
    if kind == "clen-not-number":  # RFC 3261 20.14: Content-Length is 1*DIGIT
        return msg(h + ["Content-Type: application/sdp", "Content-Length: abc"], body), True
    if kind == "clen-duplicate":  # RFC 3261 7.3.1: two Content-Length values that disagree
        return msg(h + ["Content-Type: application/sdp", f"Content-Length: {len(body)}", "Content-Length: 3"], body), True
    if kind == "cseq-method-mismatch":  # RFC 4475 3.1.2.14 (mismatch01)
        h = [x if not x.startswith("CSeq") else "CSeq: 1 OPTIONS" for x in h]
        return msg(h + ["Content-Length: 0"]), True
    if kind == "cseq-not-number":  # RFC 3261 20.16: CSeq number is 1*DIGIT
        h = [x if not x.startswith("CSeq") else "CSeq: one INVITE" for x in h]
        return msg(h + ["Content-Length: 0"]), True
    if kind == "missing-call-id":  # RFC 4475 3.1.2.? (insuf): a mandatory header missing
        h = [x for x in h if not x.startswith("Call-ID")]
        return msg(h + ["Content-Length: 0"]), True
    if kind == "missing-from":  # RFC 3261 8.1.1: From is mandatory
        h = [x for x in h if not x.startswith("From")]
        return msg(h + ["Content-Length: 0"]), True
    if kind == "max-forwards-garbage":  # RFC 3261 20.22: Max-Forwards is 1*DIGIT
        h = [x if not x.startswith("Max-Forwards") else "Max-Forwards: seventy" for x in h]
        return msg(h + ["Content-Length: 0"]), True
    if kind == "header-without-colon":  # RFC 3261 7.3: message-header = field-name ":" ...
        return msg(h + ["ThisLineHasNoColon", "Content-Length: 0"]), True
    if kind == "bad-request-uri":  # RFC 4475 3.1.2.? : unparsable Request-URI with spaces
        return msg(h + ["Content-Length: 0"], start="INVITE sip:alice@hq.example.com ;lr=x> <bad SIP/2.0"), True
    if kind == "bad-to-header":  # RFC 4475 3.1.2.? (ltgtruri-like): broken name-addr in To
        h = [x if not x.startswith("To") else "To: <sip:alice@hq.example.com" for x in h]
        return msg(h + ["Content-Length: 0"]), True
    # Not answerable: nothing to answer to.
    if kind == "garbage-binary":
        return bytes(range(256)) * 2, False
    if kind == "garbage-text":
        return b"this is not SIP at all\r\n\r\n", False
    if kind == "no-via":  # RFC 3261 8.1.1.7: no Via, so no address to answer
        h = [x for x in h if not x.startswith("Via")]
        return msg(h + ["Content-Length: 0"]), False
    if kind == "truncated-start-line":
        return b"INVITE sip:alice@hq.exa", False
    raise ValueError(kind)


KINDS = [
    "clen-too-big", "clen-negative", "clen-not-number", "clen-duplicate",
    "cseq-method-mismatch", "cseq-not-number", "missing-call-id", "missing-from",
    "max-forwards-garbage", "header-without-colon", "bad-request-uri", "bad-to-header",
    "garbage-binary", "garbage-text", "no-via", "truncated-start-line",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="127.0.2.1:5060", help="HOST:PORT of the proxy (UDP)")
    ap.add_argument("--bind", default="127.0.2.20", help="local address (a trunk's accepted source)")
    ap.add_argument("--rounds", type=int, default=10, help="rounds of every kind (bounded)")
    ap.add_argument("--rate", type=int, default=2000, help="datagrams per second at most")
    ap.add_argument("--wait", type=float, default=2.0, help="seconds to collect answers after the burst")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to send")
    ap.add_argument("--min-400", type=int, default=None, help="pass when at least this many 400s")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every answer's status line")
    a = ap.parse_args()
    rounds = max(0, min(a.rounds, 100000))
    thost, tport = a.target.rsplit(":", 1)
    target = (thost, int(tport))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.bind, 0))
    local = s.getsockname()
    kinds = [k for k in a.kinds.split(",") if k]

    answerable = 0
    sent = 0
    kind_of_callid = {}
    interval = 1.0 / max(1, a.rate)
    t0 = time.monotonic()
    for n in range(rounds):
        for k in kinds:
            data, ok = build(k, n, local, thost)
            kind_of_callid[f"torture-{k}-{n}@"] = k
            kind_of_callid[f"z9hG4bKtorture{k}{n};"] = k
            s.sendto(data, target)
            sent += 1
            answerable += 1 if ok else 0
            due = t0 + sent * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    codes = collections.Counter()
    per_kind = collections.Counter()
    deadline = time.monotonic() + a.wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        text = data.decode("latin-1")
        m = re.match(r"SIP/2\.0 (\d{3})", text)
        if not m:
            continue
        code = m.group(1)
        codes[code] += 1
        if a.verbose:
            print(text.split("\r\n", 1)[0], "<-", next((v for key, v in kind_of_callid.items() if key in text), "?"))
        if code == "400":
            kind = next((v for key, v in sorted(kind_of_callid.items()) if key in text), "?")
            per_kind[kind] += 1

    n400 = codes.get("400", 0)
    other = ",".join(f"{c}:{n}" for c, n in sorted(codes.items()) if c != "400") or "-"
    kinds_txt = ",".join(f"{k}:{per_kind.get(k, 0)}" for k in kinds)
    print(f"sent={sent} answerable={answerable} responses={sum(codes.values())} 400={n400} other={other} per_kind={kinds_txt}")
    need = answerable if a.min_400 is None else a.min_400
    return 0 if n400 >= need else 1


if __name__ == "__main__":
    sys.exit(main())
