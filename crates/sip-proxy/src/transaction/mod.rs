//! The RFC 3261 §17 transaction layer, sans-IO: INVITE and non-INVITE client and server
//! transactions with their timers, retransmissions and matching.
//!
//! Nothing here touches a socket or reads a clock. The driver feeds received messages with
//! [`Transactions::handle_message`], fires deadlines with [`Transactions::handle_timeout`] at
//! [`Transactions::poll_timeout`], and drains [`Transactions::poll_transmit`] and
//! [`Transactions::poll_event`] after every call.
//!
//! Two deviations from plain RFC 3261, both for a proxy: INVITE transactions enter the
//! RFC 6026 *Accepted* state on 2xx (so a retransmitted INVITE is absorbed and a retransmitted
//! 2xx is still passed up), and a client transaction that gets no response at all within
//! [`Config::response_timeout`] reports [`Event::TimedOut`] early so the proxy can fail over.

mod client;
mod key;
mod server;
mod sharded;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{Message, Method};

use client::Client;
use key::{ClientKey, ServerKey};
use server::Server;
use sharded::Sharded;
use timers::{Owner, Slot, Timers};

/// The transaction layer: every client and server transaction of one proxy.
#[derive(Debug)]
pub struct Transactions {
    config: Config,
    next_id: u64,
    // Sharded, and transactions boxed: a table growth moves a 64th of the entries, and
    // pointers rather than whole transactions (growing one table of a quarter-million inline
    // entries stalled every message for ~100 ms).
    clients: Sharded<u64, Box<Client>>,
    client_keys: Sharded<ClientKey, u64>,
    servers: Sharded<u64, Box<Server>>,
    server_keys: Sharded<ServerKey, u64>,
    timers: Timers,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Timer values and proxy policies.
#[derive(Clone, Debug)]
pub struct Config {
    /// RTT estimate, 500 ms by default (RFC 3261 §17.1.1.1).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, 5 s.
    pub t4: Duration,
    /// How long a client transaction sent with [`OutgoingRequest::early_timeout`] waits for its
    /// first response, of any kind, before it reports [`Event::TimedOut`]; capped by Timer B/F
    /// (64·T1). Default 1 s, so failover to the next destination happens in about a second.
    pub response_timeout: Duration,
    /// Timer C (RFC 3261 §16.6 step 11): how long an INVITE waits for a final response once a
    /// provisional arrived. Default 180 s.
    pub timer_c: Duration,
    /// Send `100 Trying` as soon as an INVITE arrives (RFC 3261 §16.2). Default true.
    pub send_trying: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            response_timeout: Duration::from_secs(1),
            timer_c: Duration::from_secs(180),
            send_trying: true,
        }
    }
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: unreliable, so requests and final responses are retransmitted.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// True for TCP and TLS, which need no retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The default port of the transport (RFC 3263 §4.2).
    pub fn default_port(self) -> u16 {
        if self == Self::Tls { 5061 } else { 5060 }
    }

    /// Parses a Via or `transport=` token, case-insensitively.
    pub fn from_token(token: &[u8]) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls]
            .into_iter()
            .find(|t| token.eq_ignore_ascii_case(t.as_str().as_bytes()))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other end of a message: transport and address. For TCP and TLS the driver maps it to
/// a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: Peer,
    /// One complete message.
    pub bytes: Bytes,
    /// The client transaction that sent it, to report a failed send with
    /// [`Transactions::handle_transport_error`].
    pub client: Option<ClientId>,
}

/// Identifies a client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

/// Identifies a server transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(u64);

/// A request to send in a new client transaction.
#[derive(Clone, Debug)]
pub struct OutgoingRequest {
    /// The method; it must match the CSeq of `bytes`.
    pub method: Method,
    /// The branch of the top Via in `bytes`, which responses will carry.
    pub branch: Bytes,
    /// The serialized request.
    pub bytes: Bytes,
    /// Report [`Event::TimedOut`] when no response at all arrives within
    /// [`Config::response_timeout`], rather than waiting for Timer B or F. A proxy wants this
    /// when another destination could take over, and for INVITE.
    pub early_timeout: bool,
}

/// What the transaction user must act on.
#[derive(Debug)]
pub enum Event {
    /// A new request (not ACK, not CANCEL) created a server transaction.
    Request {
        /// The new server transaction.
        id: ServerId,
        /// Where it came from.
        from: Peer,
        /// The request.
        msg: Message,
    },
    /// A CANCEL created its own server transaction (RFC 3261 §9.2).
    Cancel {
        /// The CANCEL's server transaction, which the user must answer.
        id: ServerId,
        /// The INVITE server transaction it cancels, if one matches.
        invite: Option<ServerId>,
        /// Where it came from.
        from: Peer,
        /// The CANCEL.
        msg: Message,
    },
    /// An ACK that no transaction absorbed: the ACK for a 2xx, an end-to-end request.
    Ack {
        /// Where it came from.
        from: Peer,
        /// The ACK.
        msg: Message,
    },
    /// A response for a client transaction (provisional, final, or a retransmitted 2xx).
    Response {
        /// The client transaction.
        id: ClientId,
        /// The response.
        msg: Message,
    },
    /// A response that matches no client transaction, to be forwarded statelessly
    /// (RFC 3261 §16.7 step 2).
    StrayResponse {
        /// Where it came from.
        from: Peer,
        /// The response.
        msg: Message,
    },
    /// A client transaction got no (final) response in time.
    TimedOut {
        /// The client transaction.
        id: ClientId,
        /// True when a provisional response had arrived (Timer C): the user should CANCEL.
        /// The transaction then stays alive to receive the `487`.
        provisional: bool,
    },
    /// The driver reported that a client transaction's request could not be sent.
    TransportFailed {
        /// The client transaction, now terminated.
        id: ClientId,
    },
    /// An INVITE server transaction sent a non-2xx final response and no ACK came (Timer H).
    AckTimedOut {
        /// The server transaction, now terminated.
        id: ServerId,
    },
}

// === impl Transactions ===

impl Transactions {
    /// An empty transaction layer.
    pub fn new(config: Config) -> Self {
        let timers = Timers::with_delays(timer_delays(&config));
        Self {
            config,
            next_id: 0,
            clients: Sharded::default(),
            client_keys: Sharded::default(),
            servers: Sharded::default(),
            server_keys: Sharded::default(),
            timers,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes a message received from `from`.
    pub fn handle_message(&mut self, now: Instant, from: Peer, msg: Message) {
        if msg.is_request() {
            self.handle_request(now, from, msg);
        } else {
            self.handle_response(now, from, msg);
        }
    }

    /// Fires every deadline due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, owner, slot)) = self.timers.pop_due(now) {
            match owner {
                Owner::Client(id) => self.client_timer(now, id, at, slot),
                Owner::Server(id) => self.server_timer(now, id, at, slot),
            }
        }
    }

    /// Sends a request statelessly: an ACK for 2xx, or a stateless forward.
    pub fn send_stateless(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            to,
            bytes,
            client: None,
        });
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next deadline; call [`Transactions::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Live client and server transactions, for metrics.
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty()
    }

    /// Pending timer entries, including stale ones, for metrics.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            to,
            bytes,
            client: None,
        });
    }

    fn transmit_for(&mut self, id: u64, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            to,
            bytes,
            client: Some(ClientId(id)),
        });
    }
}

/// Every delay a timer is set with, measured from the moment it is set: each gets a lane of
/// its own in [`Timers`]. (Timer F after a provisional counts from the first send; it goes to
/// the queue's heap.)
fn timer_delays(config: &Config) -> Vec<Duration> {
    // Timers A, E and G double from T1; E and G stop at T2; A goes on to Timer B.
    let mut delays: Vec<Duration> = (0..7).map(|k| config.t1 * (1 << k)).collect();
    delays.extend([
        config.t2,
        config.t4,
        timer_64t1(config),
        config.timer_c,
        config.response_timeout,
        client::TIMER_D,
    ]);
    delays
}

/// 64·T1: Timers B, F, H, J, L and M.
fn timer_64t1(config: &Config) -> Duration {
    config.t1 * 64
}
