//! Failover, CANCEL, pings, draining and overload.

use super::*;

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
fn all_destinations_unreachable_gives_503_and_all_overloaded_gives_500() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    lab.advance(Duration::from_secs(3));
    assert_eq!(lab.statuses_to(UAC), [100, 503]);
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

#[test]
fn a_response_carrying_only_our_via_gets_the_request_vias_back() {
    let mut lab = Lab::new();
    lab.recv(UAC, invite("+14085550100"));
    let first = lab.request_to(dest1());
    // Keep only the top Via (ours), as a UAS that builds its 487 from a CANCEL does.
    let full = String::from_utf8(answer(&first, 486).to_vec()).unwrap();
    let mut seen_via = false;
    let trimmed: String = full
        .split_inclusive("\r\n")
        .filter(|line| {
            if !line.starts_with("Via:") {
                return true;
            }
            !std::mem::replace(&mut seen_via, true)
        })
        .collect();
    lab.recv(dest1(), trimmed);
    let sent = lab.to(UAC);
    let last = sent.last().expect("a final response reaches the caller");
    assert_eq!(last.status(), Some(486));
    let branches: Vec<Vec<u8>> = last
        .vias()
        .map(|v| v.unwrap().branch().unwrap().to_vec())
        .collect();
    assert_eq!(branches, [b"z9hG4bKuac1".to_vec()]);
}

#[test]
fn a_destination_that_keeps_answering_is_reported_once_a_second() {
    let mut lab = Lab::new();
    let call = |lab: &mut Lab, n: usize| {
        lab.recv(
            UAC,
            invite("+14085550100").replace("z9hG4bKuac1", &format!("z9hG4bKuac1-{n}")),
        );
        let fwd = lab.request_to(dest1());
        lab.recv(dest1(), answer(&fwd, 200));
        lab.to(UAC);
    };
    let answered = |lab: &Lab| {
        lab.events
            .iter()
            .filter(|e| **e == Event::DestinationAnswered { peer: dest1() })
            .count()
    };
    for n in 0..5 {
        call(&mut lab, n);
    }
    assert_eq!(
        answered(&lab),
        1,
        "repeats within a second are not reported"
    );
    lab.advance(Duration::from_millis(1001));
    call(&mut lab, 5);
    assert_eq!(answered(&lab), 2, "reported again after a second");
    // Anything else reported about the destination makes the next answer news at once.
    lab.recv(
        UAC,
        invite("+14085550100").replace("z9hG4bKuac1", "z9hG4bKuac1-6"),
    );
    let fwd = lab.request_to(dest1());
    lab.recv(dest1(), answer(&fwd, 503));
    lab.to(dest1()); // the ACK for the 503
    call(&mut lab, 7);
    assert_eq!(answered(&lab), 3);
}

#[test]
fn destinations_remembered_as_answering_stay_bounded() {
    let mut events = Events::default();
    let now = Instant::now();
    let n = 3 * u16::try_from(ANSWERED_MAX).unwrap();
    for port in 0..n {
        events.report(
            now,
            Event::DestinationAnswered {
                peer: udp([192, 0, 2, 99], port),
            },
        );
        assert!(events.answered.len() <= ANSWERED_MAX);
    }
    assert_eq!(
        events.queue.len(),
        usize::from(n),
        "each new destination is reported"
    );
}
