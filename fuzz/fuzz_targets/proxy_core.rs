//! `proxy_core`: the sans-IO proxy (`sip_proxy::Core`) fed a sequence of datagrams and events
//! from a few peers, with a fake clock, over a small static `Route`.
//!
//! Input format (see README.md): records separated by a NUL byte. Each record is one control
//! byte followed by a payload:
//!
//! ```text
//!  control = op (bits 7..5) | clock step (bits 4..3) | peer (bits 2..0)
//!  op 0..=3  payload is a datagram received from PEERS[peer]
//!  op 4      a destination answers the forwarded request number `payload[0]` with the status
//!            `100 + (payload[1..3] as u16) % 600` (To tag added above 100)
//!  op 5      the send of the last client transmit failed (a transport error)
//!  op 6      an OPTIONS ping to PEERS[peer]
//!  op 7      the last transmit comes back as if PEERS[peer] had sent it (loops, echoes)
//!  clock step: 0 none, 1 +20 ms, 2 +700 ms, 3 +33 s; then due timers fire
//! ```
//!
//! A seed made of one SIP message from the UDP phone is the byte `0x01` and the message. After every step
//! all transmits are drained; each must be a message that `Message::parse` accepts, except a
//! `400`/`505` built from a malformed request (it copies the malformed lines), which must still
//! split with `Message::parse_lenient`. At the end the clock runs 5 minutes ahead and every
//! transaction must be gone.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_proxy::message::{Message, ResponseBuilder};
use sip_proxy::proxy::{Config, LocalAddr};
use sip_proxy::transaction::{ClientId, Peer, Transmit, Transport};
use sip_proxy::{Core, Route, RouteRequest, RouteResult, Target};

const EDGE_IP: [u8; 4] = [203, 0, 113, 1];

fn peer(transport: Transport, ip: [u8; 4], port: u16) -> Peer {
    Peer {
        transport,
        addr: SocketAddr::from((ip, port)),
    }
}

/// The peers: an IPv6 phone, phones on three transports, the two trunk destinations, an
/// unknown host and the edge itself (a looped message). Index 0 is the IPv6 phone because a
/// control byte of 0 cannot occur (NUL separates records): seeds use 0x01 for the UDP phone.
fn peers() -> [Peer; 8] {
    [
        Peer {
            transport: Transport::Udp,
            addr: "[2001:db8::10]:5060".parse().expect("v6"),
        },
        peer(Transport::Udp, [192, 0, 2, 10], 5060),
        peer(Transport::Tcp, [192, 0, 2, 11], 40000),
        peer(Transport::Tls, [192, 0, 2, 12], 40001),
        peer(Transport::Udp, [198, 51, 100, 1], 5060),
        peer(Transport::Tcp, [198, 51, 100, 2], 5060),
        peer(Transport::Udp, [192, 0, 2, 99], 5099),
        peer(Transport::Udp, EDGE_IP, 5060),
    ]
}

/// `unknown` gets 404, `busy` 486, `nowhere` a target with no destination; every other user
/// goes to the UDP destination then the TCP one, with the Cisco route-string header added.
struct StaticRoute;

impl Route for StaticRoute {
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult {
        match req.uri.user() {
            Some(b"unknown") => RouteResult::Reject {
                status: 404,
                reason: "Not Found".into(),
            },
            Some(b"busy") => RouteResult::Reject {
                status: 486,
                reason: "Busy Here".into(),
            },
            Some(b"nowhere") => RouteResult::Forward(Target {
                trunk: "empty".into(),
                destinations: vec![],
                headers: vec![],
            }),
            _ => RouteResult::Forward(Target {
                trunk: "fuzz".into(),
                destinations: vec![peers()[4], peers()[5]],
                headers: vec![("X-cisco-dest-route-string".into(), "<sip:hq.route>".into())],
            }),
        }
    }
}

struct Harness {
    core: Core<StaticRoute>,
    now: Instant,
    start: Instant,
    /// Requests the proxy sent to a destination, to answer them.
    forwarded: Vec<(Peer, Message)>,
    last: Option<Transmit>,
    last_client: Option<ClientId>,
}

impl Harness {
    fn new() -> Self {
        let local = [
            (Transport::Udp, 5060),
            (Transport::Tcp, 5060),
            (Transport::Tls, 5061),
        ]
        .into_iter()
        .map(|(transport, port)| LocalAddr {
            transport,
            addr: SocketAddr::from((EDGE_IP, port)),
        })
        .collect();
        let mut config = Config {
            local,
            aliases: vec!["edge.example.com".into()],
            max_pending: 64,
            ..Config::default()
        };
        config.transaction.response_timeout = Duration::from_millis(500);
        let now = Instant::now();
        Self {
            core: Core::new(config, StaticRoute),
            now,
            start: now,
            forwarded: Vec::new(),
            last: None,
            last_client: None,
        }
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        // Fire every deadline in order up to `until`, as the driver's timer task would.
        for _ in 0..10_000 {
            match self.core.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.core.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = until;
        self.core.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            check_transmit(&t);
            if let Ok(m) = Message::parse(t.bytes.clone())
                && m.is_request()
                && self.forwarded.len() < 64
            {
                self.forwarded.push((t.to, m));
            }
            if t.client.is_some() {
                self.last_client = t.client;
            }
            self.last = Some(t);
        }
        while self.core.poll_event().is_some() {}
    }

    fn step(&mut self, ctl: u8, payload: &[u8]) {
        let peers = peers();
        let from = peers[usize::from(ctl & 7)];
        let step = match (ctl >> 3) & 3 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(20),
            2 => Duration::from_millis(700),
            _ => Duration::from_secs(33),
        };
        if !step.is_zero() {
            self.advance(step);
        }
        match ctl >> 5 {
            0..=3 => {
                self.core
                    .handle_datagram(self.now, from, Bytes::copy_from_slice(payload));
            }
            4 => self.answer(payload),
            5 => {
                if let Some(id) = self.last_client.take() {
                    self.core.handle_transport_error(self.now, id);
                }
            }
            6 => {
                let _ = self.core.send_ping(self.now, from);
            }
            _ => {
                if let Some(t) = self.last.clone() {
                    self.core.handle_datagram(self.now, from, t.bytes);
                }
            }
        }
        self.drain();
    }

    /// A destination answers one of the requests the proxy forwarded to it.
    fn answer(&mut self, payload: &[u8]) {
        if self.forwarded.is_empty() {
            return;
        }
        let idx = usize::from(payload.first().copied().unwrap_or(0)) % self.forwarded.len();
        let code = payload
            .get(1..3)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let status = 100 + code % 600;
        let (to, req) = &self.forwarded[idx];
        let mut b = ResponseBuilder::new(req, status, "Fuzz")
            .header("Contact", b"<sip:callee@198.51.100.1:5060>");
        if status > 100 {
            b = b.to_tag(b"fuzztag");
        }
        let mut rr = Vec::new();
        for value in req.header_values(sip_proxy::message::HeaderName::RecordRoute) {
            rr.push(value.to_vec());
        }
        for value in &rr {
            b = b.header("Record-Route", value);
        }
        let resp = b.build();
        let to = *to;
        self.core.handle_datagram(self.now, to, resp);
    }
}

fn check_transmit(t: &Transmit) {
    match Message::parse(t.bytes.clone()) {
        Ok(_) => {}
        Err(e) => {
            let lenient = Message::parse_lenient(t.bytes.clone());
            let malformed_reply =
                matches!(&lenient, Ok(m) if matches!(m.status(), Some(400 | 505)));
            assert!(
                malformed_reply,
                "the proxy sent a message that does not parse ({e}) to {:?}:\n{:?}",
                t.to,
                String::from_utf8_lossy(&t.bytes)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    for (n, record) in data.split(|&b| b == 0).enumerate() {
        if n >= 64 {
            break;
        }
        let Some((&ctl, payload)) = record.split_first() else {
            continue;
        };
        h.step(ctl, payload);
    }
    // Five minutes later every transaction has ended (Timer C is 180 s).
    h.advance(Duration::from_secs(300));
    assert_eq!(
        h.core.pending(),
        0,
        "requests still pending {:?} after the last input",
        h.now - h.start
    );
});
