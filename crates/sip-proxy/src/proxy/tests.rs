//! Proxy scenarios over the sans-IO core: a fake clock, an in-test router, no sockets.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::{HeaderName, Message, ResponseBuilder, Uri};
use crate::transaction::{Peer, Transport};

const EDGE: [u8; 4] = [203, 0, 113, 1];

fn udp(ip: [u8; 4], port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from((ip, port)),
    }
}

fn tcp(ip: [u8; 4], port: u16) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: SocketAddr::from((ip, port)),
    }
}

const UAC: Peer = Peer {
    transport: Transport::Udp,
    addr: SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)),
        5060,
    ),
};

fn dest1() -> Peer {
    udp([198, 51, 100, 1], 5060)
}

fn dest2() -> Peer {
    udp([198, 51, 100, 2], 5060)
}

/// Routes `+1408...` to two destinations, `tcp...` to a TCP trunk, and rejects the rest.
#[derive(Default)]
struct TestRouter {
    calls: Cell<usize>,
    empty: bool,
}

impl Route for TestRouter {
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult {
        self.calls.set(self.calls.get() + 1);
        let user = req.uri.user().unwrap_or_default();
        if self.empty {
            return RouteResult::Forward(Target {
                trunk: "none".into(),
                destinations: vec![],
                headers: vec![],
            });
        }
        if user.starts_with(b"+1408") {
            RouteResult::Forward(Target {
                trunk: "hq".into(),
                destinations: vec![dest1(), dest2()],
                headers: vec![("X-cisco-dest-route-string".into(), "<sip:hq.route>".into())],
            })
        } else if user.starts_with(b"tcp") {
            RouteResult::Forward(Target {
                trunk: "tcp".into(),
                destinations: vec![tcp([198, 51, 100, 3], 5060)],
                headers: vec![],
            })
        } else if user == b"blocked" {
            RouteResult::Reject {
                status: 403,
                reason: "Forbidden".into(),
            }
        } else {
            RouteResult::Reject {
                status: 404,
                reason: "Not Found".into(),
            }
        }
    }
}

struct Lab {
    core: Core<TestRouter>,
    now: Instant,
    sent: Vec<Transmit>,
    events: Vec<Event>,
}

impl Lab {
    fn new() -> Self {
        Self::with_router(TestRouter::default())
    }

    fn with_router(router: TestRouter) -> Self {
        let config = Config {
            local: vec![
                LocalAddr {
                    transport: Transport::Udp,
                    addr: SocketAddr::from((EDGE, 5060)),
                },
                LocalAddr {
                    transport: Transport::Tcp,
                    addr: SocketAddr::from((EDGE, 5060)),
                },
            ],
            aliases: vec!["edge.example.net".into()],
            ..Config::default()
        };
        Self {
            core: Core::new(config, router),
            now: Instant::now(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.sent.push(t);
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
    }

    fn recv(&mut self, from: Peer, raw: impl Into<Bytes>) {
        self.core.handle_datagram(self.now, from, raw.into());
        self.drain();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.core.poll_timeout().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Takes every message sent to `peer`, parsed.
    fn to(&mut self, peer: Peer) -> Vec<Message> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|t| t.to == peer);
        self.sent = rest;
        mine.into_iter()
            .map(|t| Message::parse(t.bytes).expect("proxy sends valid SIP"))
            .collect()
    }

    /// Statuses sent to `peer`, with UDP retransmissions of the same response collapsed.
    fn statuses_to(&mut self, peer: Peer) -> Vec<u16> {
        let mut statuses: Vec<u16> = self.to(peer).iter().filter_map(Message::status).collect();
        statuses.dedup();
        statuses
    }

    /// Takes the single request sent to `peer`.
    fn request_to(&mut self, peer: Peer) -> Message {
        let mut msgs: Vec<Message> = self
            .to(peer)
            .into_iter()
            .filter(Message::is_request)
            .collect();
        assert_eq!(msgs.len(), 1, "one request to {peer:?}");
        msgs.remove(0)
    }
}

fn invite(user: &str) -> String {
    request(
        "INVITE",
        &format!("sip:{user}@edge.example.net"),
        "z9hG4bKuac1",
        "",
    )
}

fn request(method: &str, uri: &str, branch: &str, extra: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@branch.example.com>;tag=a1\r\nTo: <{uri}>\r\nCall-ID: call-1@192.0.2.10\r\n\
         CSeq: 1 {method}\r\nContact: <sip:alice@192.0.2.10:5060>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn answer(req: &Message, status: u16) -> Bytes {
    ResponseBuilder::new(req, status, "Downstream")
        .to_tag(b"uas1")
        .build()
}

// === forwarding ===

#[test]
fn invite_is_forwarded_with_via_record_route_and_max_forwards() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    assert_eq!(lab.statuses_to(UAC), [100]);
    let fwd = lab.request_to(dest1());
    let vias: Vec<_> = fwd.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert!(vias[0].branch().unwrap().starts_with(b"z9hG4bKie"));
    assert_eq!(vias[0].host(), "203.0.113.1");
    assert_eq!(vias[1].rport(), Some(Some(5060)));
    assert_eq!(vias[1].received(), Some(UAC.addr.ip()));
    assert_eq!(fwd.max_forwards(), Some(69));
    let rr: Vec<_> = fwd
        .record_routes()
        .map(|r| r.unwrap().uri().as_bytes().to_vec())
        .collect();
    assert_eq!(rr, [b"sip:203.0.113.1:5060;lr".to_vec()]);
    assert_eq!(
        fwd.header("X-cisco-dest-route-string"),
        Some(&b"<sip:hq.route>"[..])
    );
    assert_eq!(
        fwd.request_uri_bytes(),
        Some(&b"sip:+14085550100@edge.example.net"[..])
    );
}

#[test]
fn responses_are_relayed_without_our_via() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.to(UAC);
    let fwd = lab.request_to(dest1());
    lab.recv(dest1(), answer(&fwd, 100));
    assert!(lab.to(UAC).is_empty(), "100 is not forwarded");
    lab.recv(dest1(), answer(&fwd, 180));
    lab.recv(dest1(), answer(&fwd, 200));
    let up = lab.to(UAC);
    assert_eq!(
        up.iter().map(|m| m.status().unwrap()).collect::<Vec<_>>(),
        [180, 200]
    );
    assert_eq!(up[1].vias().count(), 1);
    assert_eq!(up[1].top_via().unwrap().branch(), Some(&b"z9hG4bKuac1"[..]));
    assert!(
        lab.events
            .contains(&Event::DestinationAnswered { peer: dest1() })
    );
    assert_eq!(lab.core.pending(), 0);
    // A retransmitted 200 is relayed again, statelessly.
    lab.recv(dest1(), answer(&fwd, 200));
    assert_eq!(lab.statuses_to(UAC), [200]);
}

#[test]
fn router_rejections_become_responses() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("nobody"));
    let up = lab.to(UAC);
    assert_eq!(
        up.iter().map(|m| m.status().unwrap()).collect::<Vec<_>>(),
        [100, 404]
    );
    let resp = &up[1];
    assert!(resp.to().unwrap().tag().is_some());
    assert_eq!(resp.header("Server"), Some(&b"ils-edge"[..]));
    assert_eq!(resp.call_id(), Some(&b"call-1@192.0.2.10"[..]));
    assert_eq!(resp.cseq().unwrap().seq, 1);
    assert_eq!(resp.content_length(), Some(0));
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        request("MESSAGE", "sip:blocked@edge.example.net", "z9hG4bKm", ""),
    );
    assert_eq!(lab.statuses_to(UAC), [403]);
    let mut lab = Lab::with_router(TestRouter {
        empty: true,
        ..TestRouter::default()
    });
    lab.recv(UAC, invite("+14085550100"));
    assert_eq!(lab.statuses_to(UAC), [100, 503]);
}

// === validation ===

#[test]
fn max_forwards_zero_gets_483_but_options_gets_200() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        invite("+14085550100").replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(lab.statuses_to(UAC), [100, 483]);
    lab.recv(
        UAC,
        request("OPTIONS", "sip:+14085550100@x", "z9hG4bKo", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(lab.statuses_to(UAC), [200]);
}

#[test]
fn missing_max_forwards_is_added_as_70() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        invite("+14085550100").replace("Max-Forwards: 70\r\n", ""),
    );
    assert_eq!(lab.request_to(dest1()).max_forwards(), Some(70));
}

#[test]
fn options_to_the_edge_itself_gets_200() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        request("OPTIONS", "sip:203.0.113.1:5060", "z9hG4bKo1", ""),
    );
    let up = lab.to(UAC);
    assert_eq!(up[0].status(), Some(200));
    assert!(up[0].header("Allow").is_some());
    lab.recv(
        UAC,
        request("OPTIONS", "sip:edge.example.net", "z9hG4bKo2", ""),
    );
    assert_eq!(lab.statuses_to(UAC), [200]);
    assert_eq!(lab.core.router().calls.get(), 0);
}

#[test]
fn unsupported_scheme_gets_416_and_proxy_require_420() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        request("INVITE", "http://example.com/x", "z9hG4bKh", ""),
    );
    assert_eq!(lab.statuses_to(UAC), [100, 416]);
    lab.recv(
        UAC,
        request(
            "MESSAGE",
            "sip:+14085550100@x",
            "z9hG4bKp",
            "Proxy-Require: foo, bar\r\n",
        ),
    );
    let up = lab.to(UAC);
    assert_eq!(up[0].status(), Some(420));
    assert_eq!(up[0].header("Unsupported"), Some(&b"foo, bar"[..]));
}

#[test]
fn tel_uri_is_routed_by_its_number() {
    let mut lab = Lab::new();
    lab.recv(UAC, request("INVITE", "tel:+14085550100", "z9hG4bKt", ""));
    let _ = lab.request_to(dest1());
}

#[test]
fn a_looped_request_gets_482_but_a_spiral_is_forwarded() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let fwd = lab.request_to(dest1());
    lab.to(UAC);
    // dest1 sends the same request back to us unchanged: a loop.
    lab.recv(dest1(), fwd.as_bytes().to_vec());
    assert_eq!(lab.statuses_to(dest1()), [100, 482]);
    // With a new Request-URI it is a spiral and goes on.
    let spiral = String::from_utf8(fwd.as_bytes().to_vec())
        .unwrap()
        .replacen(
            "sip:+14085550100@edge.example.net",
            "sip:+14085550199@edge.example.net",
            1,
        )
        .replacen(
            "Via: ",
            "Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKdownstream\r\nVia: ",
            1,
        );
    lab.recv(dest1(), spiral);
    assert_eq!(lab.to(dest1()).iter().filter(|m| m.is_request()).count(), 1);
}

#[test]
fn malformed_requests_get_400_and_malformed_responses_are_dropped() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        invite("+14085550100").replace("CSeq: 1 INVITE", "CSeq: 1 BYE"),
    );
    let up = lab.to(UAC);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].status(), Some(400));
    lab.recv(
        UAC,
        invite("+14085550100").replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
    );
    assert_eq!(lab.statuses_to(UAC), [505]);
    lab.recv(UAC, "SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n");
    lab.recv(UAC, "\u{0}\u{1}garbage");
    assert!(lab.sent.is_empty());
}

// === failover ===

#[test]
fn timeout_fails_over_to_the_next_destination() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.to(UAC);
    let first = lab.request_to(dest1());
    lab.advance(Duration::from_millis(999));
    assert!(lab.to(dest2()).is_empty());
    lab.advance(Duration::from_millis(1));
    let second = lab.request_to(dest2());
    assert_ne!(
        first.top_via().unwrap().branch(),
        second.top_via().unwrap().branch()
    );
    assert!(lab.events.contains(&Event::DestinationFailed {
        peer: dest1(),
        reason: FailReason::Timeout
    }));
    lab.recv(dest2(), answer(&second, 200));
    assert_eq!(lab.statuses_to(UAC), [200]);
}

#[test]
fn a_503_fails_over_and_a_486_is_passed_back() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.to(UAC);
    let first = lab.request_to(dest1());
    lab.recv(dest1(), answer(&first, 503));
    let acks = lab.to(dest1());
    assert_eq!(acks[0].method(), Some(&Method::Ack));
    let second = lab.request_to(dest2());
    lab.recv(dest2(), answer(&second, 486));
    assert_eq!(lab.statuses_to(UAC), [486]);
    assert!(lab.events.contains(&Event::DestinationFailed {
        peer: dest1(),
        reason: FailReason::Unavailable
    }));
}

#[test]
fn all_destinations_failing_gives_408_or_500() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.advance(Duration::from_secs(3));
    assert_eq!(lab.statuses_to(UAC), [100, 408]);
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let first = lab.request_to(dest1());
    lab.recv(dest1(), answer(&first, 503));
    let second = lab.request_to(dest2());
    lab.recv(dest2(), answer(&second, 503));
    assert_eq!(lab.statuses_to(UAC), [100, 500]);
}

#[test]
fn transport_error_fails_over_at_once() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let sent = std::mem::take(&mut lab.sent);
    let client = sent
        .iter()
        .find(|t| t.to == dest1())
        .and_then(|t| t.client)
        .unwrap();
    lab.core.handle_transport_error(lab.now, client);
    lab.drain();
    let _ = lab.request_to(dest2());
    assert!(lab.events.contains(&Event::DestinationFailed {
        peer: dest1(),
        reason: FailReason::Transport
    }));
}

// === CANCEL ===

#[test]
fn cancel_after_ringing_reaches_the_callee_and_487_comes_back() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let fwd = lab.request_to(dest1());
    lab.recv(dest1(), answer(&fwd, 180));
    lab.to(UAC);
    lab.recv(
        UAC,
        request(
            "CANCEL",
            "sip:+14085550100@edge.example.net",
            "z9hG4bKuac1",
            "",
        ),
    );
    assert_eq!(lab.statuses_to(UAC), [200]);
    let cancel = lab.request_to(dest1());
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        fwd.top_via().unwrap().branch()
    );
    lab.recv(dest1(), answer(&cancel, 200));
    lab.recv(dest1(), answer(&fwd, 487));
    assert_eq!(lab.statuses_to(UAC), [487]);
    assert_eq!(lab.to(dest1())[0].method(), Some(&Method::Ack));
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let fwd = lab.request_to(dest1());
    lab.recv(
        UAC,
        request(
            "CANCEL",
            "sip:+14085550100@edge.example.net",
            "z9hG4bKuac1",
            "",
        ),
    );
    assert!(
        lab.to(dest1()).is_empty(),
        "no CANCEL before a provisional (RFC 3261 §9.1)"
    );
    lab.recv(dest1(), answer(&fwd, 100));
    assert_eq!(lab.request_to(dest1()).method(), Some(&Method::Cancel));
}

#[test]
fn cancel_before_any_answer_stops_failover_with_487() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.recv(
        UAC,
        request(
            "CANCEL",
            "sip:+14085550100@edge.example.net",
            "z9hG4bKuac1",
            "",
        ),
    );
    lab.advance(Duration::from_secs(2));
    assert!(lab.to(dest2()).is_empty());
    assert_eq!(lab.statuses_to(UAC), [100, 200, 487]);
}

#[test]
fn cancel_without_a_transaction_gets_481() {
    let mut lab = Lab::new();
    lab.recv(
        UAC,
        request("CANCEL", "sip:x@edge.example.net", "z9hG4bKnone", ""),
    );
    assert_eq!(lab.statuses_to(UAC), [481]);
}

// === dialogs and routing ===

#[test]
fn in_dialog_bye_follows_route_without_the_dial_plan() {
    let mut lab = Lab::new();
    let bye = request(
        "BYE",
        "sip:bob@198.51.100.7:5080",
        "z9hG4bKbye",
        "Route: <sip:203.0.113.1:5060;lr>\r\n",
    )
    .replace("To: <sip:bob@198.51.100.7:5080>", "To: <sip:bob@x>;tag=b1");
    lab.recv(UAC, bye);
    let fwd = lab.request_to(udp([198, 51, 100, 7], 5080));
    assert_eq!(fwd.routes().count(), 0, "our Route entry is popped");
    assert_eq!(fwd.record_routes().count(), 0);
    assert_eq!(lab.core.router().calls.get(), 0);
}

#[test]
fn loose_route_to_the_next_hop_is_followed() {
    let mut lab = Lab::new();
    let req = request(
        "INVITE",
        "sip:bob@example.org",
        "z9hG4bKlr",
        "Route: <sip:edge.example.net;lr>, <sip:198.51.100.8;lr;transport=tcp>\r\n",
    );
    lab.recv(UAC, req);
    let fwd = lab.request_to(tcp([198, 51, 100, 8], 5060));
    assert_eq!(fwd.routes().count(), 1);
    assert_eq!(fwd.top_via().unwrap().transport(), b"TCP");
}

#[test]
fn strict_router_request_uri_is_replaced_by_the_last_route() {
    let mut lab = Lab::new();
    let req = request(
        "BYE",
        "sip:203.0.113.1:5060;lr",
        "z9hG4bKsr",
        "Route: <sip:bob@198.51.100.9>\r\n",
    )
    .replace("To: <sip:203.0.113.1:5060;lr>", "To: <sip:bob@x>;tag=b1");
    lab.recv(UAC, req);
    let fwd = lab.request_to(udp([198, 51, 100, 9], 5060));
    assert_eq!(fwd.request_uri_bytes(), Some(&b"sip:bob@198.51.100.9"[..]));
    assert_eq!(fwd.routes().count(), 0);
}

#[test]
fn transport_change_adds_two_record_routes() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("tcp-user"));
    let fwd = lab.request_to(tcp([198, 51, 100, 3], 5060));
    let rr: Vec<_> = fwd
        .record_routes()
        .map(|r| r.unwrap().uri().as_bytes().to_vec())
        .collect();
    assert_eq!(
        rr,
        [
            b"sip:203.0.113.1:5060;transport=tcp;lr".to_vec(),
            b"sip:203.0.113.1:5060;lr".to_vec()
        ]
    );
    // The in-dialog BYE from the callee carries both as Route; we pop both.
    let bye = request(
        "BYE",
        "sip:alice@192.0.2.10:5060",
        "z9hG4bKb2",
        "Route: <sip:203.0.113.1:5060;transport=tcp;lr>, <sip:203.0.113.1:5060;lr>\r\n",
    )
    .replace("To: <sip:alice@192.0.2.10:5060>", "To: <sip:a@x>;tag=a9");
    lab.recv(tcp([198, 51, 100, 3], 40000), bye);
    let fwd = lab.request_to(UAC);
    assert_eq!(fwd.routes().count(), 0);
}

#[test]
fn ack_for_2xx_is_forwarded_statelessly_with_a_stable_branch() {
    let mut lab = Lab::new();
    let ack = request(
        "ACK",
        "sip:bob@198.51.100.7:5080",
        "z9hG4bKack",
        "Route: <sip:203.0.113.1;lr>\r\n",
    )
    .replace("To: <sip:bob@198.51.100.7:5080>", "To: <sip:bob@x>;tag=b1");
    lab.recv(UAC, ack.clone());
    lab.recv(UAC, ack);
    let fwd = lab.to(udp([198, 51, 100, 7], 5080));
    assert_eq!(fwd.len(), 2);
    assert_eq!(
        fwd[0].top_via().unwrap().branch(),
        fwd[1].top_via().unwrap().branch()
    );
    assert!(lab.to(UAC).is_empty(), "an ACK is never answered");
}

#[test]
fn subsequent_request_uri_user_params_and_ipv6_are_kept() {
    let mut lab = Lab::new();
    let uri = "sip:+1408-555-0123;npdi;rn=+14085550000@[2001:db8::1];user=phone";
    lab.recv(UAC, request("INVITE", uri, "z9hG4bKv6", ""));
    let fwd = lab.request_to(dest1());
    assert_eq!(fwd.request_uri_bytes(), Some(uri.as_bytes()));
    assert_eq!(
        Uri::parse(fwd.request_uri_bytes().unwrap()).unwrap().host(),
        "2001:db8::1"
    );
    assert!(fwd.has(HeaderName::Contact));
}

// === pings ===

#[test]
fn options_ping_reports_answers_and_silence() {
    let mut lab = Lab::new();
    lab.core.send_ping(lab.now, dest1());
    lab.drain();
    let ping = lab.request_to(dest1());
    assert_eq!(ping.method(), Some(&Method::Options));
    lab.recv(dest1(), answer(&ping, 200));
    assert!(lab.events.contains(&Event::PingAnswered {
        peer: dest1(),
        status: 200
    }));
    lab.core.send_ping(lab.now, dest2());
    lab.drain();
    lab.advance(Duration::from_secs(2));
    assert!(lab.events.contains(&Event::PingFailed { peer: dest2() }));
}

#[test]
fn overload_gets_503_with_retry_after() {
    let mut lab = Lab::new();
    lab.core.config.max_pending = 1;
    lab.recv(UAC, invite("+14085550100"));
    lab.recv(
        UAC,
        request(
            "INVITE",
            "sip:+14085550101@edge.example.net",
            "z9hG4bKuac2",
            "",
        ),
    );
    let up = lab.to(UAC);
    let last = up.last().unwrap();
    assert_eq!(last.status(), Some(503));
    assert_eq!(last.header("Retry-After"), Some(&b"5"[..]));
}

proptest::proptest! {
    #[test]
    fn mangled_requests_and_responses_never_panic(
        pos in 0usize..400,
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..4),
        cut in 0usize..400,
    ) {
        let mut lab = Lab::new();
        let mut raw = invite("+14085550100").into_bytes();
        let pos = pos % raw.len();
        raw.splice(pos..(pos + bytes.len()).min(raw.len()), bytes.iter().copied());
        raw.truncate(cut.max(pos + 1).min(raw.len()));
        lab.recv(UAC, raw.clone());
        lab.advance(Duration::from_secs(1));
        // The same damage applied to a response from the trunk.
        lab.recv(UAC, invite("+14085550100"));
        if let Some(fwd) = lab.to(dest1()).into_iter().find(Message::is_request) {
            let mut resp = answer(&fwd, 180).to_vec();
            let pos = pos % resp.len();
            resp.splice(pos..(pos + bytes.len()).min(resp.len()), bytes.iter().copied());
            lab.recv(dest1(), resp);
        }
        // Past Timer C (180 s) every request has ended.
        lab.advance(Duration::from_secs(200));
        proptest::prop_assert_eq!(lab.core.pending(), 0);
    }
}

#[test]
fn a_bye_to_its_only_destination_waits_for_timer_f_then_ends_silently() {
    let mut lab = Lab::new();
    let bye = request("BYE", "sip:bob@198.51.100.7:5080", "z9hG4bKbyeF", "")
        .replace("To: <sip:bob@198.51.100.7:5080>", "To: <sip:bob@x>;tag=b1");
    lab.recv(UAC, bye);
    lab.advance(Duration::from_secs(5));
    assert!(
        lab.statuses_to(UAC).is_empty(),
        "no early timeout without a destination to fail over to"
    );
    lab.advance(Duration::from_secs(27));
    assert!(
        lab.statuses_to(UAC).is_empty(),
        "RFC 4320: no 408 for a non-INVITE"
    );
    assert_eq!(lab.core.pending(), 0);
    assert!(lab.core.tsx.is_empty());
}

#[test]
fn draining_rejects_new_calls_but_finishes_dialogs() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let fwd = lab.request_to(dest1());
    lab.to(UAC);
    lab.core.set_draining(true);
    lab.recv(
        UAC,
        request(
            "INVITE",
            "sip:+14085550101@edge.example.net",
            "z9hG4bKnew",
            "",
        ),
    );
    assert_eq!(lab.statuses_to(UAC), [100, 503]);
    lab.recv(dest1(), answer(&fwd, 200));
    assert_eq!(lab.statuses_to(UAC), [200]);
    let bye = request("BYE", "sip:bob@198.51.100.7:5080", "z9hG4bKbyeD", "")
        .replace("To: <sip:bob@198.51.100.7:5080>", "To: <sip:bob@x>;tag=b1");
    lab.recv(UAC, bye);
    let _ = lab.request_to(udp([198, 51, 100, 7], 5080));
}

#[test]
fn a_ringing_call_stays_pending() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let fwd = lab.request_to(dest1());
    lab.recv(dest1(), answer(&fwd, 180));
    assert_eq!(lab.core.pending(), 1);
    lab.advance(Duration::from_secs(2));
    assert_eq!(lab.core.pending(), 1);
}

#[test]
fn ipv6_peers_get_bracketed_via_and_record_route() {
    let edge6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    let uac6 = Peer {
        transport: Transport::Udp,
        addr: "[2001:db8::10]:5060".parse().unwrap(),
    };
    let trunk6 = Peer {
        transport: Transport::Udp,
        addr: "[2001:db8::20]:5060".parse().unwrap(),
    };
    let config = Config {
        local: vec![LocalAddr {
            transport: Transport::Udp,
            addr: edge6,
        }],
        ..Config::default()
    };
    struct V6(Peer);
    impl Route for V6 {
        fn route(&self, _: &RouteRequest<'_>) -> RouteResult {
            RouteResult::Forward(Target {
                trunk: "v6".into(),
                destinations: vec![self.0],
                headers: vec![],
            })
        }
    }
    let mut core = Core::new(config, V6(trunk6));
    let invite = request("INVITE", "sip:bob@[2001:db8::1]", "z9hG4bK6", "")
        .replace("192.0.2.10:5060", "[2001:db8::10]:5060");
    core.handle_datagram(Instant::now(), uac6, Bytes::from(invite));
    let mut fwd = None;
    while let Some(t) = core.poll_transmit() {
        if t.to == trunk6 {
            fwd = Some(Message::parse(t.bytes).unwrap());
        }
    }
    let fwd = fwd.expect("forwarded to the IPv6 trunk");
    let via = fwd.top_via().unwrap();
    assert_eq!(via.host(), "2001:db8::1");
    assert!(via.is_ipv6());
    let rr = fwd.record_routes().next().unwrap().unwrap();
    assert_eq!(rr.uri().host(), "2001:db8::1");
    // The previous hop's sent-by equals its source: only rport is filled in, with received.
    let prev = fwd.vias().nth(1).unwrap().unwrap();
    assert_eq!(prev.rport(), Some(Some(5060)));
}
