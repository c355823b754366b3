//! CPU per call through the sans-IO proxy core: INVITE, 180, 200, ACK, BYE, 200 over UDP,
//! including the timers each call leaves behind. Only time spent inside the core is counted.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sip_proxy::message::{Message, ResponseBuilder};
use sip_proxy::proxy::{Config, Core, LocalAddr};
use sip_proxy::transaction::{Peer, Transmit, Transport};
use sip_proxy::{Route, RouteRequest, RouteResult, Target};

struct OneTrunk(Peer);

impl Route for OneTrunk {
    fn route(&self, _req: &RouteRequest<'_>) -> RouteResult {
        RouteResult::Forward(Target {
            trunk: "t".into(),
            destinations: vec![self.0],
            headers: vec![],
        })
    }
}

const UAC: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
    5060,
);
const UAS: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3)),
    5060,
);
const EDGE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    5060,
);

const STEP_MS: u64 = 50;

const UAS_CONTACT: &str = "sip:uas@127.0.0.3:5060";

fn udp(addr: SocketAddr) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr,
    }
}

fn request(method: &str, uri: &str, n: u64, extra: &str, to_tag: &str, cseq: u32) -> Bytes {
    Bytes::from(format!(
        "{method} {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-{n}-{method}-1;rport\r\n\
From: sipp <sip:sipp@127.0.0.2:5060>;tag={n}SIPpTag001\r\n\
To: <sip:+14085550100@127.0.0.1:5060>{to_tag}\r\n\
Call-ID: {n}-bench@127.0.0.2\r\nCSeq: {cseq} {method}\r\nContact: sip:sipp@127.0.0.2:5060\r\n\
Max-Forwards: 70\r\n{extra}Subject: Performance Test\r\nContent-Length: 0\r\n\r\n"
    ))
}

struct Call {
    out: Vec<Transmit>,
}

impl Call {
    fn drain(&mut self, core: &mut Core<OneTrunk>) {
        while let Some(t) = core.poll_transmit() {
            self.out.push(t);
        }
    }

    fn take_request_to(&mut self, to: SocketAddr) -> Message {
        let i = self
            .out
            .iter()
            .position(|t| t.to.addr == to && !t.bytes.starts_with(b"SIP/"))
            .expect("forwarded");
        Message::parse(self.out.remove(i).bytes).expect("valid")
    }
}

fn one_call(core: &mut Core<OneTrunk>, now: Instant, n: u64) -> Duration {
    let mut spent = Duration::ZERO;
    let mut call = Call { out: Vec::new() };
    let mut feed = |core: &mut Core<OneTrunk>, call: &mut Call, from: SocketAddr, bytes: Bytes| {
        let t = Instant::now();
        core.handle_datagram(now, udp(from), bytes);
        call.drain(core);
        spent += t.elapsed();
    };
    feed(
        core,
        &mut call,
        UAC,
        request("INVITE", "sip:+14085550100@127.0.0.1:5060", n, "", "", 1),
    );
    let invite = call.take_request_to(UAS);
    feed(
        core,
        &mut call,
        UAS,
        ResponseBuilder::new(&invite, 180, "Ringing")
            .to_tag(b"uas")
            .build(),
    );
    feed(
        core,
        &mut call,
        UAS,
        ResponseBuilder::new(&invite, 200, "OK")
            .to_tag(b"uas")
            .build(),
    );
    let route = "Route: <sip:127.0.0.1:5060;lr>\r\n";
    feed(
        core,
        &mut call,
        UAC,
        request("ACK", UAS_CONTACT, n, route, ";tag=uas", 1),
    );
    feed(
        core,
        &mut call,
        UAC,
        request("BYE", UAS_CONTACT, n, route, ";tag=uas", 2),
    );
    let bye = call.take_request_to(UAS);
    feed(
        core,
        &mut call,
        UAS,
        ResponseBuilder::new(&bye, 200, "OK").build(),
    );
    black_box(call.out.len());
    spent
}

fn bench(c: &mut Criterion) {
    let config = Config {
        local: vec![LocalAddr {
            transport: Transport::Udp,
            addr: EDGE,
        }],
        ..Config::default()
    };
    let mut core = Core::new(config, OneTrunk(udp(UAS)));
    let start = Instant::now();
    let mut n = 0u64;
    c.bench_function("proxy_call_udp", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                // One millisecond of fake time per call, so timers expire as in a real run.
                let now = start + Duration::from_millis(n * STEP_MS);
                total += one_call(&mut core, now, n);
                let t = Instant::now();
                core.handle_timeout(now);
                total += t.elapsed();
            }
            total
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
