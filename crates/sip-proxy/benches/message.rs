//! Hot-path benches: parse a realistic INVITE, and parse + proxy edit + serialize.

use std::hint::black_box;
use std::net::IpAddr;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sip_proxy::message::{Editor, Message};

const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
t=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn invite() -> Bytes {
    let head = "INVITE sip:+14085550100@hq.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---d8754z;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK74bf9;received=198.51.100.4\r\n\
Record-Route: <sip:198.51.100.4:5060;lr>\r\n\
Route: <sip:203.0.113.1:5060;lr>\r\n\
Max-Forwards: 69\r\n\
To: <sip:+14085550100@hq.example.com;user=phone>\r\n\
From: \"Alice\" <sip:alice@branch.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@branch.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Cisco-CUCM14.0\r\n\
Content-Type: application/sdp\r\n";
    Bytes::from(format!("{head}Content-Length: {}\r\n\r\n{SDP}", SDP.len()))
}

fn bench(c: &mut Criterion) {
    let raw = invite();
    c.bench_function("parse_invite", |b| {
        b.iter(|| Message::parse(black_box(raw.clone())).expect("valid INVITE"))
    });
    c.bench_function("split_invite", |b| {
        b.iter(|| Message::parse_lenient(black_box(raw.clone())).expect("valid INVITE"))
    });
    let received = IpAddr::from([192, 0, 2, 10]);
    c.bench_function("proxy_invite", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(raw.clone())).expect("valid INVITE");
            let mf = msg.max_forwards().unwrap_or(70).saturating_sub(1);
            let mut ed = Editor::new(&msg);
            ed.prepend_via(
                b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKie0123456789abcdef.1;rport",
            )
            .top_via_received(Some(received), Some(5060))
            .max_forwards(mf)
            .pop_route()
            .prepend_record_route(b"<sip:203.0.113.1:5060;lr>");
            ed.finish()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
