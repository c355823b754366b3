//! Deterministic transaction tests: a fake clock, no sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::{Message, ResponseBuilder};

const T1: Duration = Duration::from_millis(500);

struct Harness {
    tsx: Transactions,
    now: Instant,
    sent: Vec<Transmit>,
    events: Vec<Event>,
}

impl Harness {
    fn new() -> Self {
        Self::with(Config::default())
    }

    fn with(config: Config) -> Self {
        Self {
            tsx: Transactions::new(config),
            now: Instant::now(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.tsx.poll_transmit() {
            self.sent.push(t);
        }
        while let Some(e) = self.tsx.poll_event() {
            self.events.push(e);
        }
    }

    /// Advances the clock by `d`, firing every deadline on the way in order.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.tsx.poll_timeout().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.tsx.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn receive(&mut self, from: Peer, raw: &str) {
        let msg =
            Message::parse(Bytes::copy_from_slice(raw.as_bytes())).expect("test message parses");
        self.tsx.handle_message(self.now, from, msg);
        self.drain();
    }

    fn take_sent(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
    }
}

fn tcp(port: u16) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
    }
}

fn request(method: &str, branch: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch={branch};rport\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-1\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn response(status: u16, method: &str, branch: &str) -> String {
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\nCall-ID: call-1\r\n\
         CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn outgoing(method: Method, branch: &str) -> OutgoingRequest {
    let name = String::from_utf8_lossy(method.as_bytes()).into_owned();
    OutgoingRequest {
        method,
        branch: Bytes::copy_from_slice(branch.as_bytes()),
        bytes: Bytes::from(request(&name, branch)),
        early_timeout: true,
    }
}

fn response_to(req: &Message, status: u16) -> Bytes {
    ResponseBuilder::new(req, status, "Test")
        .to_tag(b"t1")
        .build()
}

fn method_of(t: &Transmit) -> Option<Method> {
    Message::parse(t.bytes.clone()).ok()?.method().cloned()
}

// === client INVITE ===

#[test]
fn invite_retransmits_with_timer_a_then_times_out() {
    let mut h = Harness::with(Config {
        response_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let id = h
        .tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc1"));
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    // Timer A: T1, 2·T1, 4·T1, ... until Timer B at 64·T1 (7 retransmissions at 1..32 T1).
    let mut at = Vec::new();
    let start = h.now;
    for _ in 0..64 {
        h.advance(T1);
        for _ in h.take_sent() {
            at.push((h.now - start).as_millis() / T1.as_millis());
        }
    }
    assert_eq!(at, [1, 3, 7, 15, 31, 63]);
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::TimedOut { id: x, provisional: false }] if *x == id)
    );
    assert!(h.tsx.is_empty());
}

#[test]
fn invite_reports_response_timeout_early_for_failover() {
    let mut h = Harness::new();
    let id = h
        .tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc2"));
    h.drain();
    h.advance(Duration::from_millis(999));
    assert!(h.take_events().is_empty());
    h.advance(Duration::from_millis(1));
    assert!(
        matches!(h.take_events().as_slice(), [Event::TimedOut { id: x, provisional: false }] if *x == id)
    );
    // T1 at 500 ms was retransmitted once before the timeout.
    assert_eq!(h.take_sent().len(), 2);
}

#[test]
fn invite_over_tcp_does_not_retransmit() {
    let mut h = Harness::new();
    h.tsx
        .send_request(h.now, tcp(5060), outgoing(Method::Invite, "z9hG4bKc3"));
    h.drain();
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_sent().len(), 1);
    assert_eq!(h.take_events().len(), 1);
}

#[test]
fn a_later_provisional_restarts_timer_c() {
    let mut h = Harness::new();
    h.tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc5"));
    h.drain();
    h.receive(udp(5060), &response(180, "INVITE", "z9hG4bKc5"));
    h.advance(Duration::from_secs(100));
    h.receive(udp(5060), &response(183, "INVITE", "z9hG4bKc5"));
    h.take_events();
    h.advance(Duration::from_secs(179));
    assert!(h.take_events().is_empty(), "Timer C runs from the 183");
    h.advance(Duration::from_secs(1));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::TimedOut {
            provisional: true,
            ..
        }]
    ));
}

#[test]
fn an_answered_invite_leaves_only_its_linger_deadline_queued() {
    let mut h = Harness::new();
    h.tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc6"));
    h.drain();
    h.receive(udp(5060), &response(180, "INVITE", "z9hG4bKc6"));
    h.receive(udp(5060), &response(200, "INVITE", "z9hG4bKc6"));
    // Past Timer A and the response timeout: their entries came due and were dropped, and
    // Timer C never got one of its own.
    h.advance(Duration::from_secs(2));
    assert_eq!(h.tsx.timer_entries(), 1, "Timer M only");
    h.advance(Duration::from_secs(31));
    assert_eq!(h.tsx.timer_entries(), 0);
    assert!(h.tsx.is_empty());
}

#[test]
fn provisional_stops_timer_a_and_starts_timer_c() {
    let mut h = Harness::new();
    let id = h
        .tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc4"));
    h.drain();
    h.take_sent();
    h.receive(udp(5060), &response(180, "INVITE", "z9hG4bKc4"));
    assert!(matches!(h.take_events().as_slice(), [Event::Response { id: x, .. }] if *x == id));
    h.advance(Duration::from_secs(179));
    assert!(
        h.take_sent().is_empty(),
        "no retransmission after a provisional"
    );
    assert!(h.take_events().is_empty());
    h.advance(Duration::from_secs(1));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::TimedOut {
            provisional: true,
            ..
        }]
    ));
    // The proxy cancels; the INVITE transaction still receives the 487 and ACKs it.
    let cancel = h
        .tsx
        .cancel(h.now, id)
        .expect("pending INVITE can be cancelled");
    h.drain();
    let sent = h.take_sent();
    assert_eq!(method_of(&sent[0]), Some(Method::Cancel));
    h.receive(udp(5060), &response(200, "CANCEL", "z9hG4bKc4"));
    h.receive(udp(5060), &response(487, "INVITE", "z9hG4bKc4"));
    let events = h.take_events();
    assert!(
        matches!(&events[0], Event::Response { id: x, msg } if *x == cancel && msg.status() == Some(200))
    );
    assert!(
        matches!(&events[1], Event::Response { id: x, msg } if *x == id && msg.status() == Some(487))
    );
    assert_eq!(method_of(&h.take_sent()[0]), Some(Method::Ack));
}

#[test]
fn non_2xx_final_is_acked_and_retransmissions_absorbed() {
    let mut h = Harness::new();
    let id = h
        .tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc5"));
    h.drain();
    h.take_sent();
    h.receive(udp(5060), &response(486, "INVITE", "z9hG4bKc5"));
    assert!(matches!(h.take_events().as_slice(), [Event::Response { id: x, .. }] if *x == id));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    let ack = Message::parse(sent[0].bytes.clone()).unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.to().unwrap().tag(), Some(&b"b1"[..]));
    assert_eq!(ack.top_via().unwrap().branch(), Some(&b"z9hG4bKc5"[..]));
    // A retransmitted 486 gets the ACK again, and nothing is reported.
    h.receive(udp(5060), &response(486, "INVITE", "z9hG4bKc5"));
    assert_eq!(h.take_sent().len(), 1);
    assert!(h.take_events().is_empty());
    // Timer D (32 s) ends the transaction; a later 486 is stray.
    h.advance(Duration::from_secs(32));
    h.receive(udp(5060), &response(486, "INVITE", "z9hG4bKc5"));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::StrayResponse { .. }]
    ));
}

#[test]
fn invite_2xx_and_its_retransmissions_are_passed_up() {
    let mut h = Harness::new();
    h.tsx
        .send_request(h.now, udp(5060), outgoing(Method::Invite, "z9hG4bKc6"));
    h.drain();
    h.take_sent();
    h.receive(udp(5060), &response(200, "INVITE", "z9hG4bKc6"));
    h.receive(udp(5060), &response(200, "INVITE", "z9hG4bKc6"));
    assert_eq!(h.take_events().len(), 2);
    assert!(
        h.take_sent().is_empty(),
        "the transaction layer never ACKs a 2xx"
    );
    h.advance(T1 * 64);
    assert!(h.tsx.is_empty(), "Timer M ends the accepted transaction");
}

// === client non-INVITE ===

#[test]
fn non_invite_retransmits_with_timer_e_capped_at_t2() {
    let mut h = Harness::with(Config {
        response_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let id = h
        .tsx
        .send_request(h.now, udp(5060), outgoing(Method::Options, "z9hG4bKn1"));
    h.drain();
    h.take_sent();
    let start = h.now;
    let mut at = Vec::new();
    for _ in 0..64 {
        h.advance(T1);
        for _ in h.take_sent() {
            at.push((h.now - start).as_millis() / T1.as_millis());
        }
    }
    // 0.5, 1.5, 3.5, 7.5 s, then every T2 = 4 s until Timer F at 32 s.
    assert_eq!(at, [1, 3, 7, 15, 23, 31, 39, 47, 55, 63]);
    assert!(matches!(h.take_events().as_slice(), [Event::TimedOut { id: x, .. }] if *x == id));
}

#[test]
fn non_invite_final_then_timer_k() {
    let mut h = Harness::new();
    h.tsx
        .send_request(h.now, udp(5060), outgoing(Method::Options, "z9hG4bKn2"));
    h.drain();
    h.receive(udp(5060), &response(100, "OPTIONS", "z9hG4bKn2"));
    h.advance(Duration::from_secs(2));
    assert_eq!(
        h.take_events().len(),
        1,
        "a provisional cancels the response timeout"
    );
    h.receive(udp(5060), &response(200, "OPTIONS", "z9hG4bKn2"));
    h.receive(udp(5060), &response(200, "OPTIONS", "z9hG4bKn2"));
    assert_eq!(
        h.take_events().len(),
        1,
        "the retransmitted final is absorbed"
    );
    h.advance(Duration::from_secs(5));
    assert!(h.tsx.is_empty());
}

#[test]
fn transport_error_ends_the_client_transaction() {
    let mut h = Harness::new();
    let id = h
        .tsx
        .send_request(h.now, tcp(5060), outgoing(Method::Invite, "z9hG4bKn3"));
    h.tsx.handle_transport_error(id);
    h.drain();
    assert!(matches!(h.take_events().as_slice(), [Event::TransportFailed { id: x }] if *x == id));
    assert!(h.tsx.is_empty());
}

// === server INVITE ===

#[test]
fn server_invite_sends_trying_and_absorbs_retransmissions() {
    let mut h = Harness::new();
    let invite = request("INVITE", "z9hG4bKs1");
    h.receive(udp(5070), &invite);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].bytes.starts_with(b"SIP/2.0 100 Trying"));
    assert_eq!(sent[0].to, udp(5070), "rport: reply to the source port");
    let events = h.take_events();
    let [Event::Request { id, msg, .. }] = events.as_slice() else {
        panic!("one request: {events:?}")
    };
    let (id, msg) = (*id, msg.clone());
    h.receive(udp(5070), &invite);
    assert!(h.take_events().is_empty());
    assert!(
        h.take_sent()[0].bytes.starts_with(b"SIP/2.0 100"),
        "retransmission gets the last response"
    );
    h.tsx.respond(h.now, id, 180, response_to(&msg, 180));
    h.drain();
    h.take_sent();
    h.receive(udp(5070), &invite);
    assert!(h.take_sent()[0].bytes.starts_with(b"SIP/2.0 180"));
}

#[test]
fn server_invite_final_retransmits_with_timer_g_until_ack() {
    let mut h = Harness::new();
    h.receive(udp(5070), &request("INVITE", "z9hG4bKs2"));
    let Some(Event::Request { id, msg, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.take_sent();
    h.tsx.respond(h.now, id, 486, response_to(&msg, 486));
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    let start = h.now;
    let mut at = Vec::new();
    for _ in 0..8 {
        h.advance(T1);
        for _ in h.take_sent() {
            at.push((h.now - start).as_millis() / T1.as_millis());
        }
    }
    assert_eq!(at, [1, 3, 7], "Timer G doubles, capped at T2");
    h.receive(udp(5070), &request("ACK", "z9hG4bKs2"));
    assert!(
        h.take_events().is_empty(),
        "the ACK for a non-2xx is absorbed"
    );
    h.advance(Duration::from_secs(10));
    assert!(h.take_sent().is_empty());
    assert!(h.tsx.is_empty(), "Timer I ended the transaction");
}

#[test]
fn server_invite_without_ack_reports_timer_h() {
    let mut h = Harness::new();
    h.receive(tcp(5070), &request("INVITE", "z9hG4bKs3"));
    let Some(Event::Request { id, msg, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.tsx.respond(h.now, id, 404, response_to(&msg, 404));
    h.drain();
    h.advance(T1 * 64);
    assert!(matches!(h.take_events().as_slice(), [Event::AckTimedOut { id: x }] if *x == id));
    assert_eq!(
        h.take_sent().len(),
        2,
        "100 and 404 only: no retransmissions over TCP"
    );
}

#[test]
fn server_invite_accepted_absorbs_invite_and_passes_2xx_ack() {
    let mut h = Harness::new();
    h.receive(udp(5070), &request("INVITE", "z9hG4bKs4"));
    let Some(Event::Request { id, msg, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.tsx.respond(h.now, id, 200, response_to(&msg, 200));
    h.drain();
    h.take_sent();
    h.receive(udp(5070), &request("INVITE", "z9hG4bKs4"));
    assert!(
        h.take_events().is_empty() && h.take_sent().is_empty(),
        "RFC 6026: absorbed"
    );
    // The ACK for a 2xx has its own branch: it matches nothing and is passed up.
    h.receive(udp(5070), &request("ACK", "z9hG4bKack"));
    assert!(matches!(h.take_events().as_slice(), [Event::Ack { .. }]));
    h.advance(T1 * 64);
    assert!(h.tsx.is_empty(), "Timer L");
}

#[test]
fn cancel_matches_the_invite_server_transaction() {
    let mut h = Harness::new();
    h.receive(udp(5070), &request("INVITE", "z9hG4bKs5"));
    let Some(Event::Request { id: invite, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.receive(udp(5070), &request("CANCEL", "z9hG4bKs5"));
    let events = h.take_events();
    assert!(matches!(events.as_slice(), [Event::Cancel { invite: Some(x), .. }] if *x == invite));
    h.receive(udp(5070), &request("CANCEL", "z9hG4bKother"));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Cancel { invite: None, .. }]
    ));
}

// === server non-INVITE ===

#[test]
fn server_non_invite_resends_final_until_timer_j() {
    let mut h = Harness::new();
    let bye = request("BYE", "z9hG4bKs6");
    h.receive(udp(5070), &bye);
    assert!(h.take_sent().is_empty(), "no automatic 100 for non-INVITE");
    let Some(Event::Request { id, msg, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.receive(udp(5070), &bye);
    assert!(
        h.take_sent().is_empty() && h.take_events().is_empty(),
        "absorbed in Trying"
    );
    h.tsx.respond(h.now, id, 200, response_to(&msg, 200));
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    h.receive(udp(5070), &bye);
    assert!(h.take_sent()[0].bytes.starts_with(b"SIP/2.0 200"));
    h.advance(T1 * 64);
    assert!(h.tsx.is_empty());
    h.receive(udp(5070), &bye);
    assert!(
        matches!(h.take_events().as_slice(), [Event::Request { .. }]),
        "a new transaction after J"
    );
}

#[test]
fn reply_goes_to_sent_by_port_without_rport() {
    let mut h = Harness::new();
    h.receive(
        udp(40000),
        &request("OPTIONS", "z9hG4bKs7").replace(";rport", ""),
    );
    let Some(Event::Request { id, msg, .. }) = h.take_events().pop() else {
        panic!("request")
    };
    h.tsx.respond(h.now, id, 200, response_to(&msg, 200));
    h.drain();
    assert_eq!(h.take_sent()[0].to.addr.port(), 5070);
}

#[test]
fn many_transactions_share_one_timer_heap() {
    let mut h = Harness::new();
    for i in 0..10_000 {
        h.tsx.send_request(
            h.now,
            udp(5060),
            outgoing(Method::Options, &format!("z9hG4bKm{i}")),
        );
    }
    h.drain();
    assert_eq!(h.take_sent().len(), 10_000);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_events().len(), 10_000);
    assert!(h.tsx.is_empty());
    assert_eq!(h.tsx.poll_timeout(), None, "stale entries drained");
}
