//! Parser, editor and response tests, including the RFC 4475 torture messages kept under
//! `tests/data/rfc4475/`.

use std::net::IpAddr;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/data/rfc4475/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn parse(s: &str) -> Message {
    Message::parse(Bytes::copy_from_slice(s.as_bytes())).expect("parses")
}

const INVITE: &str = "INVITE sip:+14155550123@example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKold\r\n\
Max-Forwards: 70\r\n\
To: <sip:+14155550123@example.com;user=phone>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:edge.example.net;lr>, <sip:next.example.net;lr>\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
X-cisco-dest-route-string: <sip:hq.route>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n";

// === RFC 4475 valid messages ===

#[test]
fn wsinv_parses_with_three_vias_and_folded_values() {
    let msg = Message::parse(fixture("wsinv")).unwrap();
    assert_eq!(msg.method(), Some(&Method::Invite));
    assert_eq!(msg.max_forwards(), Some(68));
    assert_eq!(
        msg.cseq(),
        Some(&CSeq {
            seq: 9,
            method: Method::Invite
        })
    );
    assert_eq!(msg.call_id(), Some(&b"wsinv.ndaksdj@192.0.2.1"[..]));
    assert_eq!(msg.content_length(), Some(150));
    assert_eq!(msg.body().len(), 150);
    let vias: Vec<Via<'_>> = msg.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host(), "192.0.2.2");
    assert_eq!(vias[0].branch(), Some(&b"390skdjuw"[..]));
    assert_eq!(vias[1].transport(), b"TCP");
    assert_eq!(vias[1].host(), "spindle.example.com");
    assert_eq!(vias[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
    assert_eq!(vias[2].host(), "192.168.255.111");
    assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
    assert_eq!(msg.to().unwrap().tag(), Some(&b"1918181833n"[..]));
    assert_eq!(msg.from().unwrap().tag(), Some(&b"98asjd8"[..]));
    assert_eq!(msg.from().unwrap().uri().host(), "example.com");
    let route = msg.routes().next().unwrap().unwrap();
    assert!(route.uri().is_loose_router());
    assert_eq!(msg.header("Subject"), Some(&b""[..]));
    assert_eq!(
        msg.header("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    let contact = msg.contacts().next().unwrap().unwrap();
    assert_eq!(contact.params().get("q"), Some(Some(&b"0.33"[..])));
    assert_eq!(msg.request_uri().unwrap().param("unknownparam"), Some(None));
}

#[test]
fn intmeth_keeps_unusual_method_and_non_ascii_bytes() {
    let msg = Message::parse(fixture("intmeth")).unwrap();
    let Some(Method::Extension(m)) = msg.method() else {
        panic!("extension method")
    };
    assert_eq!(&m[..], b"!interesting-Method0123456789_*+`.%indeed'~");
    let uri = msg.request_uri().unwrap();
    assert_eq!(uri.host(), "example.com");
    assert_eq!(
        uri.password(),
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(msg.max_forwards(), Some(255));
    assert!(msg.header("extensionHeader-!.%*+_`'~").is_some());
    assert_eq!(msg.from().unwrap().tag(), Some(&b"_token~1'+`*%!-."[..]));
}

#[test]
fn escaped_uris_decode_on_request() {
    let msg = Message::parse(fixture("esc01")).unwrap();
    let uri = msg.request_uri().unwrap();
    assert_eq!(
        uri.user_decoded().as_deref(),
        Some(&b"sips:user@example.com"[..])
    );
    assert_eq!(uri.host(), "example.net");
    let msg = Message::parse(fixture("escnull")).unwrap();
    assert_eq!(
        msg.to().unwrap().uri().user_decoded().as_deref(),
        Some(&b"null-\0-null"[..])
    );
    assert_eq!(msg.contacts().count(), 2);
    let msg = Message::parse(fixture("esc02")).unwrap();
    assert!(matches!(msg.method(), Some(Method::Extension(_))));
    assert_eq!(msg.contacts().count(), 2, "C%6Fntact is not Contact");
}

#[test]
fn other_valid_torture_messages_parse() {
    for name in [
        "lwsdisp",
        "longreq",
        "semiuri",
        "transports",
        "mpart01",
        "unkscm",
    ] {
        let msg = Message::parse(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(msg.is_request(), "{name}");
    }
    let msg = Message::parse(fixture("semiuri")).unwrap();
    assert_eq!(
        msg.request_uri().unwrap().user(),
        Some(&b"user;par=u%40example.net"[..])
    );
    assert_eq!(msg.request_uri().unwrap().host(), "example.com");
    let msg = Message::parse(fixture("transports")).unwrap();
    let transports: Vec<&[u8]> = msg.vias().map(|v| v.unwrap().transport()).collect();
    assert_eq!(
        transports,
        [&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]
    );
    let msg = Message::parse(fixture("longreq")).unwrap();
    assert_eq!(msg.vias().count(), 39);
    let msg = Message::parse(fixture("unkscm")).unwrap();
    assert_eq!(msg.request_uri().unwrap().scheme(), Scheme::Other);
}

#[test]
fn dblreq_truncates_to_content_length() {
    let msg = Message::parse(fixture("dblreq")).unwrap();
    assert_eq!(msg.method(), Some(&Method::Register));
    assert!(msg.body().is_empty());
    assert!(msg.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));
}

#[test]
fn responses_with_odd_reasons_parse() {
    let msg = Message::parse(fixture("unreason")).unwrap();
    assert_eq!(msg.status(), Some(200));
    assert!(
        std::str::from_utf8(msg.reason().unwrap())
            .unwrap()
            .contains("простое")
    );
    let msg = Message::parse(fixture("noreason")).unwrap();
    assert_eq!(msg.status(), Some(100));
    assert_eq!(msg.reason(), Some(&b""[..]));
}

// === RFC 4475 invalid messages ===

#[test]
fn invalid_torture_messages_are_rejected() {
    type Check = fn(&ParseError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("badinv01", |e| {
            matches!(e, ParseError::InvalidHeader { name: "Via" })
        }),
        ("clerr", |e| {
            matches!(
                e,
                ParseError::BodyTooShort {
                    declared: 9999,
                    actual: 150
                }
            )
        }),
        ("insuf", |e| matches!(e, ParseError::MissingHeader { .. })),
        ("ncl", |e| matches!(e, ParseError::BadContentLength)),
        ("scalar02", |e| {
            matches!(
                e,
                ParseError::InvalidHeader {
                    name: "CSeq" | "Max-Forwards"
                }
            )
        }),
        ("mismatch01", |e| {
            matches!(e, ParseError::CSeqMethodMismatch)
        }),
        ("badvers", |e| matches!(e, ParseError::UnsupportedVersion)),
        ("lwsruri", |e| {
            matches!(e, ParseError::BadRequestUri(_) | ParseError::BadStartLine)
        }),
        ("quotbal", |e| {
            matches!(e, ParseError::InvalidHeader { name: "To" })
        }),
        ("multi01", |e| matches!(e, ParseError::InvalidHeader { .. })),
    ];
    for (name, check) in cases {
        let err = Message::parse(fixture(name)).expect_err(name);
        assert!(check(&err), "{name}: unexpected {err:?}");
    }
}

#[test]
fn rejected_requests_can_still_be_split_for_a_400() {
    let msg = Message::parse_lenient(fixture("mismatch01")).unwrap();
    let resp = ResponseBuilder::new(&msg, 400, "Bad Request")
        .to_tag(b"x")
        .build();
    let resp = Message::parse(resp).unwrap();
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.call_id(), Some(&b"mismatch01.dj0234sxdfl3"[..]));
}

// === other parser cases ===

#[test]
fn bare_lf_and_compact_forms() {
    let msg = parse(
        "MESSAGE sip:bob@[2001:db8::10]:5070 SIP/2.0\nv: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bK1, \
         SIP/2.0/TCP h2;branch=z9hG4bK2\nf: <sip:a@b>;tag=1\nt: sip:bob@x\ni: cid\nCSeq: 1 MESSAGE\nl: 2\n\nhi",
    );
    let vias: Vec<_> = msg.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host(), "2001:db8::9:1");
    assert!(vias[0].is_ipv6());
    assert_eq!(vias[0].port(), Some(5060));
    assert_eq!(msg.request_uri().unwrap().host(), "2001:db8::10");
    assert_eq!(msg.body(), b"hi");
    assert_eq!(msg.max_forwards(), None);
}

#[test]
fn non_utf8_header_values_are_kept() {
    let raw = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: \"Jos\xe9\" <sip:j@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n";
    let msg = Message::parse(Bytes::from_static(raw)).unwrap();
    assert_eq!(
        msg.from().unwrap().display_name(),
        Some(&b"\"Jos\xe9\""[..])
    );
    assert_eq!(msg.call_id(), Some(&b"c"[..]));
    assert_eq!(Editor::new(&msg).finish(), Bytes::from_static(raw));
}

#[test]
fn unterminated_and_garbage_inputs_fail() {
    for bad in [
        "",
        "\r\n\r\n",
        "INVITE sip:a@b SIP/2.0\r\nVia: x",
        "garbage\r\n\r\n",
        "SIP/2.0 2000 OK\r\n\r\n",
        "SIP/2.0 099 Low\r\n\r\n",
        "INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n",
        "INVITE http SIP/2.0\r\n\r\n",
    ] {
        assert!(
            Message::parse(Bytes::copy_from_slice(bad.as_bytes())).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn arbitrary_header_by_name_and_tel_uri() {
    let msg = parse(INVITE);
    assert_eq!(
        msg.header("x-CISCO-dest-route-string"),
        Some(&b"<sip:hq.route>"[..])
    );
    assert_eq!(msg.header("l"), Some(&b"5"[..]));
    let msg = parse(&INVITE.replace(
        "sip:+14155550123@example.com;user=phone SIP",
        "tel:+14155550123 SIP",
    ));
    assert_eq!(msg.request_uri().unwrap().scheme(), Scheme::Tel);
    assert_eq!(
        msg.request_uri().unwrap().user(),
        Some(&b"+14155550123"[..])
    );
}

// === editor ===

#[test]
fn editor_without_changes_reproduces_the_message() {
    for name in ["wsinv", "esc01", "intmeth", "transports", "mpart01"] {
        let raw = fixture(name);
        let msg = Message::parse(raw.clone()).unwrap();
        assert_eq!(Editor::new(&msg).finish(), raw, "{name}");
    }
}

#[test]
fn proxy_edit_of_a_request() {
    let msg = parse(INVITE);
    let mut ed = Editor::new(&msg);
    ed.prepend_via(b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKnew;rport")
        .top_via_received(Some(IpAddr::from([198, 51, 100, 7])), Some(40000))
        .max_forwards(69)
        .prepend_record_route(b"<sip:203.0.113.1:5060;lr>")
        .prepend_record_route(b"<sip:203.0.113.1:5060;transport=tcp;lr>")
        .pop_route()
        .add_header("X-Added", b"yes");
    let out = Message::parse(ed.finish()).unwrap();
    let vias: Vec<_> = out.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some(&b"z9hG4bKnew"[..]));
    assert_eq!(vias[1].received(), Some(IpAddr::from([198, 51, 100, 7])));
    assert_eq!(vias[1].rport(), Some(Some(40000)));
    assert_eq!(vias[1].branch(), Some(&b"z9hG4bK776asdhds"[..]));
    assert_eq!(out.max_forwards(), Some(69));
    let rr: Vec<_> = out
        .record_routes()
        .map(|r| r.unwrap().uri().params().get("transport").flatten())
        .collect();
    assert_eq!(rr, [Some(&b"tcp"[..]), None]);
    let routes: Vec<_> = out
        .routes()
        .map(|r| r.unwrap().uri().host().to_owned())
        .collect();
    assert_eq!(routes, ["next.example.net"]);
    assert_eq!(out.header("X-Added"), Some(&b"yes"[..]));
    assert_eq!(out.body(), b"v=0\r\n");
    assert_eq!(
        out.header("X-cisco-dest-route-string"),
        msg.header("X-cisco-dest-route-string")
    );
}

#[test]
fn editor_adds_max_forwards_replaces_uri_and_pops_last_route() {
    let src = INVITE.replace("Max-Forwards: 70\r\n", "");
    let msg = parse(&src);
    let mut ed = Editor::new(&msg);
    ed.max_forwards(70)
        .request_uri(b"sip:bob@192.0.2.20")
        .pop_last_route();
    let out = Message::parse(ed.finish()).unwrap();
    assert_eq!(out.max_forwards(), Some(70));
    assert_eq!(out.request_uri_bytes(), Some(&b"sip:bob@192.0.2.20"[..]));
    assert_eq!(out.routes().count(), 1);
    assert_eq!(
        out.routes().next().unwrap().unwrap().uri().host(),
        "edge.example.net"
    );
}

#[test]
fn editor_removes_top_via_of_a_response() {
    let msg = parse(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP us;branch=z9hG4bKa, SIP/2.0/UDP them;branch=z9hG4bKb\r\n\
         Via: SIP/2.0/UDP third;branch=z9hG4bKc\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
         Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    let out = Message::parse(Editor::new(&msg).remove_top_via().finish()).unwrap();
    let hosts: Vec<_> = out.vias().map(|v| v.unwrap().host().to_owned()).collect();
    assert_eq!(hosts, ["them", "third"]);
    let out2 = Message::parse(Editor::new(&out).remove_top_via().finish()).unwrap();
    let hosts: Vec<_> = out2.vias().map(|v| v.unwrap().host().to_owned()).collect();
    assert_eq!(hosts, ["third"]);
}

#[test]
fn response_builder_copies_dialog_headers() {
    let msg = parse(INVITE);
    let resp = ResponseBuilder::new(&msg, 404, "Not Found")
        .to_tag(b"abc")
        .header("Server", b"ils-edge")
        .build();
    let resp = Message::parse(resp).unwrap();
    assert_eq!(resp.status(), Some(404));
    assert_eq!(resp.vias().count(), 2);
    assert_eq!(resp.to().unwrap().tag(), Some(&b"abc"[..]));
    assert_eq!(resp.from().unwrap().tag(), Some(&b"1928301774"[..]));
    assert_eq!(resp.cseq(), msg.cseq());
    assert_eq!(resp.header("Server"), Some(&b"ils-edge"[..]));
    let trying = Message::parse(
        ResponseBuilder::new(&msg, 100, "Trying")
            .to_tag(b"abc")
            .build(),
    )
    .unwrap();
    assert_eq!(trying.to().unwrap().tag(), None);
}

proptest! {
    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(Bytes::from(data.clone()));
        let _ = Message::parse_lenient(Bytes::from(data));
    }

    #[test]
    fn mutated_invite_never_panics(pos in 0usize..INVITE.len(), byte in any::<u8>(), cut in 0usize..INVITE.len()) {
        let mut data = INVITE.as_bytes().to_vec();
        data[pos] = byte;
        data.truncate(cut.max(pos));
        if let Ok(msg) = Message::parse(Bytes::from(data)) {
            let _ = msg.vias().count();
            let _ = msg.routes().count();
            let mut ed = Editor::new(&msg);
            ed.prepend_via(b"SIP/2.0/UDP h;branch=z9hG4bKx").max_forwards(1).pop_route()
                .top_via_received(Some(IpAddr::from([1, 2, 3, 4])), Some(9));
            let _ = Message::parse_lenient(ed.finish());
            let _ = ResponseBuilder::new(&msg, 400, "Bad").build();
        }
    }

    #[test]
    fn header_values_round_trip(value in "[a-zA-Z0-9;=.,<>:@ -]{0,40}") {
        let raw = format!("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n\
            To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nX-Test: {value}\r\nl: 0\r\n\r\n");
        let msg = Message::parse(Bytes::from(raw.clone())).unwrap();
        prop_assert_eq!(msg.header("X-Test"), Some(value.trim().as_bytes()));
        prop_assert_eq!(&Editor::new(&msg).finish()[..], raw.as_bytes());
    }
}
