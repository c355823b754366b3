//! Forwarding, validation, loop detection and routing.

use super::*;

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
    // RFC 3261 §7.3: a header line without a colon; a Request-URI that is not a URI. Both
    // still name where the answer goes.
    lab.recv(
        UAC,
        invite("+14085550100").replace("Max-Forwards: 70\r\n", "ThisLineHasNoColon\r\n"),
    );
    assert_eq!(lab.statuses_to(UAC), [400]);
    lab.recv(
        UAC,
        invite("+14085550100").replacen(
            "sip:+14085550100@edge.example.net SIP/2.0",
            "sip:a@b ;lr=x> <bad SIP/2.0",
            1,
        ),
    );
    assert_eq!(lab.statuses_to(UAC), [400]);
    lab.recv(UAC, "SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n");
    lab.recv(UAC, "\u{0}\u{1}garbage");
    assert!(lab.sent.is_empty());
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

#[test]
fn in_dialog_requests_addressed_to_the_edge_use_the_dial_plan() {
    // SIPp's stock UAC sends ACK and BYE to sip:service@<proxy> with the Record-Route as Route.
    let mut lab = Lab::new();
    let uri = "sip:+14085550100@203.0.113.1:5060";
    let ack = request(
        "ACK",
        uri,
        "z9hG4bKsa",
        "Route: <sip:203.0.113.1:5060;lr>\r\n",
    )
    .replace(&format!("To: <{uri}>"), &format!("To: <{uri}>;tag=uas1"));
    lab.recv(UAC, ack);
    let fwd = lab.to(dest1());
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].method(), Some(&Method::Ack));
    assert_eq!(fwd[0].routes().count(), 0);
    let bye = request(
        "BYE",
        uri,
        "z9hG4bKsb",
        "Route: <sip:203.0.113.1:5060;lr>\r\n",
    )
    .replace(&format!("To: <{uri}>"), &format!("To: <{uri}>;tag=uas1"));
    lab.recv(UAC, bye);
    let fwd = lab.request_to(dest1());
    assert_eq!(fwd.method(), Some(&Method::Bye));
    assert_eq!(fwd.record_routes().count(), 0);
    lab.recv(dest1(), answer(&fwd, 200));
    assert_eq!(lab.statuses_to(UAC), [200]);
}
