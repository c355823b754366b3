//! Who we are and how we name ourselves: local addresses, our Via and Record-Route values,
//! branch parameters with a loop-detection hash (RFC 3261 §16.6 step 8), and next hops taken
//! from URIs.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use super::Config;
use crate::message::{HeaderName, Message, Method, Scheme, Uri};
use crate::transaction::{OutgoingRequest, Peer, Transport};

/// One address this proxy listens on and advertises in Via and Record-Route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    /// The transport of the listener.
    pub transport: Transport,
    /// The address put into Via sent-by and Record-Route.
    pub addr: SocketAddr,
}

/// The prefix of every branch we generate: the RFC 3261 cookie and our marker.
pub(super) const BRANCH_PREFIX: &str = "z9hG4bKie";

impl Config {
    /// The local address to send from toward `to`: same transport and IP family if possible.
    pub(super) fn local_for(&self, to: Peer) -> Option<LocalAddr> {
        let family = |a: &LocalAddr| a.addr.is_ipv4() == to.addr.is_ipv4();
        self.local
            .iter()
            .find(|a| a.transport == to.transport && family(a))
            .or_else(|| self.local.iter().find(|a| a.transport == to.transport))
            .or_else(|| self.local.first())
            .copied()
    }

    /// The local address a request arrived on.
    pub(super) fn local_of(&self, from: Peer) -> Option<LocalAddr> {
        self.local_for(from)
    }

    /// True when `host:port` names this proxy.
    pub(super) fn is_local(&self, host: &str, port: Option<u16>) -> bool {
        let port_ok = |a: &LocalAddr| {
            let default = if a.transport == Transport::Tls {
                5061
            } else {
                5060
            };
            port.unwrap_or(default) == a.addr.port()
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => self.local.iter().any(|a| a.addr.ip() == ip && port_ok(a)),
            Err(_) => {
                self.aliases.iter().any(|n| n.eq_ignore_ascii_case(host))
                    && (port.is_none() || self.local.iter().any(port_ok))
            }
        }
    }

    /// True when the URI names this proxy (host and port).
    pub(super) fn is_local_uri(&self, uri: &Uri<'_>) -> bool {
        matches!(uri.scheme(), Scheme::Sip | Scheme::Sips) && self.is_local(uri.host(), uri.port())
    }
}

/// Formats `host:port` with IPv6 brackets.
pub(super) fn host_port(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    }
}

/// Our Via value: `SIP/2.0/UDP 203.0.113.1:5060;branch=...;rport`.
pub(super) fn via_value(local: LocalAddr, branch: &str) -> String {
    let mut via = String::with_capacity(96);
    via.push_str("SIP/2.0/");
    via.push_str(local.transport.as_str());
    via.push(' ');
    push_host_port(&mut via, local.addr);
    via.push_str(";branch=");
    via.push_str(branch);
    via.push_str(";rport");
    via
}

fn push_host_port(out: &mut String, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let _ = write!(out, "{ip}:{}", addr.port());
        }
        IpAddr::V6(ip) => {
            let _ = write!(out, "[{ip}]:{}", addr.port());
        }
    }
}

/// Appends `n` as 16 lowercase hex digits.
fn push_hex(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((n >> (shift * 4)) & 0xf) as usize]));
    }
}

/// Our Record-Route value for one interface.
pub(super) fn record_route_value(local: LocalAddr) -> String {
    let transport = match local.transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
    };
    format!("<sip:{}{transport};lr>", host_port(local.addr))
}

/// The loop-detection hash of a received request (RFC 3261 §16.3 step 4): Request-URI, From
/// and To tags, Call-ID, CSeq number, Proxy-Require and Proxy-Authorization. A spiral (the
/// Request-URI changed) hashes differently; a true loop does not.
pub(super) fn loop_hash(msg: &Message) -> u64 {
    let mut h = hasher();
    h.write(msg.request_uri_bytes().unwrap_or_default());
    h.write(msg.from_tag().unwrap_or_default());
    h.write(msg.to_tag().unwrap_or_default());
    h.write(msg.call_id().unwrap_or_default());
    h.write_u32(msg.cseq().map_or(0, |c| c.seq));
    for name in [HeaderName::ProxyRequire, HeaderName::ProxyAuthorization] {
        for v in msg.header_values(name) {
            h.write(v);
        }
    }
    h.finish()
}

/// A branch for forwarding `msg` to its `attempt`-th destination. Deterministic, so that a
/// retransmitted ACK forwarded statelessly gets the same branch (RFC 3261 §16.11).
pub(super) fn branch(msg: &Message, attempt: usize) -> String {
    let mut h = hasher();
    if let Ok(via) = msg.top_via() {
        h.write(via.branch().unwrap_or_default());
        h.write(via.host().as_bytes());
        h.write_u16(via.port().unwrap_or(0));
    }
    h.write(msg.call_id().unwrap_or_default());
    h.write(msg.method().map_or(&b""[..], Method::as_bytes));
    h.write_usize(attempt);
    let mut s = String::with_capacity(48);
    s.push_str(BRANCH_PREFIX);
    push_hex(&mut s, loop_hash(msg));
    s.push('.');
    push_hex(&mut s, h.finish());
    s
}

/// True when `msg` carries a Via of ours whose loop hash matches the request: it looped.
pub(super) fn is_loop(config: &Config, msg: &Message) -> bool {
    let mut hash = None;
    for via in msg.vias().flatten() {
        let Some(branch) = via.branch() else { continue };
        let Some(rest) = branch.strip_prefix(BRANCH_PREFIX.as_bytes()) else {
            continue;
        };
        if !config.is_local(via.host(), via.port()) || rest.len() < 16 {
            continue;
        }
        let ours = hash.get_or_insert_with(|| format!("{:016x}", loop_hash(msg)));
        if rest[..16] == *ours.as_bytes() {
            return true;
        }
    }
    false
}

/// A To tag for responses we generate, stable for retransmissions of the same request.
pub(super) fn to_tag(msg: &Message) -> String {
    let mut h = hasher();
    h.write(msg.call_id().unwrap_or_default());
    h.write(msg.from_tag().unwrap_or_default());
    if let Ok(via) = msg.top_via() {
        h.write(via.branch().unwrap_or_default());
    }
    format!("ie{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// The next hop named by a URI when its host is an IP literal (RFC 3263 without DNS).
pub(super) fn peer_of_uri(uri: &Uri<'_>) -> Option<Peer> {
    let ip = uri.host_ip()?;
    let transport = match uri.param("transport").flatten() {
        Some(t) => Transport::from_token(t)?,
        None if uri.scheme() == Scheme::Sips => Transport::Tls,
        None => Transport::Udp,
    };
    let port = uri.port().unwrap_or(if transport == Transport::Tls {
        5061
    } else {
        5060
    });
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

/// An OPTIONS request to ping a destination.
pub(super) fn options_ping(config: &Config, to: Peer, seq: u64) -> OutgoingRequest {
    let local = config.local_for(to).unwrap_or(LocalAddr {
        transport: to.transport,
        addr: to.addr,
    });
    let branch = format!("{BRANCH_PREFIX}ping{seq:016x}");
    let target = host_port(to.addr);
    let from = host_port(local.addr);
    let bytes = format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:ping@{from}>;tag=ie{seq:x}\r\n\
         To: <sip:{target}>\r\nCall-ID: ping-{seq:x}@{from}\r\nCSeq: 1 OPTIONS\r\nUser-Agent: {ua}\r\n\
         Content-Length: 0\r\n\r\n",
        via = via_value(local, &branch),
        ua = config.server,
    );
    OutgoingRequest {
        method: Method::Options,
        branch: Bytes::from(branch),
        bytes: Bytes::from(bytes),
        early_timeout: true,
    }
}

fn hasher() -> impl Hasher {
    foldhash::fast::FixedState::with_seed(0x6c6f_6f70).build_hasher()
}
