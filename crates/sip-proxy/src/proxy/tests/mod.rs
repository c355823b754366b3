//! Proxy scenarios over the sans-IO core: a fake clock, an in-test router, no sockets.
//! The harness is here; `requests` covers forwarding, validation and routing, `responses`
//! covers failover, CANCEL, pings and overload.

mod requests;
mod responses;

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
