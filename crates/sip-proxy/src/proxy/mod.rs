//! The stateful proxy core (RFC 3261 §16), sans-IO: validates requests, asks a [`Route`] where
//! they go, forwards them through client transactions with serial failover, and relays
//! responses back.
//!
//! ```text
//!  handle_datagram ─▶ Transactions ─Event::Request─▶ validate ─▶ loose routing / Route::route
//!                                                                 │ Forward(Target)
//!                      poll_transmit ◀── client transaction ◀─────┘ (one destination at a time)
//!  responses ─▶ best response / failover on timeout, transport error or 503 ─▶ server tx
//! ```
//!
//! Requests inside a dialog (a To tag, or Route headers left after popping our own) follow
//! their Route set or Request-URI without consulting the [`Route`]; everything else is routed
//! by it. ACK for a 2xx is forwarded statelessly, as are responses that match no transaction.

mod addr;
mod request;
mod response;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{Message, Method, Uri};
use crate::transaction::{
    self, ClientId, Event as TsxEvent, Peer, ServerId, Transactions, Transmit,
};

pub use addr::LocalAddr;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Decides where an out-of-dialog request goes. The daemon implements it over the dial plan.
pub trait Route {
    /// Routes one request.
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult;

    /// Resolves a URI that is not an IP literal (a Route or Request-URI host name) to
    /// destinations, in the order to try. The default resolves nothing.
    fn resolve(&self, uri: &Uri<'_>) -> Vec<Peer> {
        let _ = uri;
        Vec::new()
    }
}

/// What a [`Route`] sees of a request.
#[derive(Debug)]
pub struct RouteRequest<'a> {
    /// The source address and transport.
    pub source: Peer,
    /// The method.
    pub method: &'a Method,
    /// The Request-URI (after strict-route fix-up).
    pub uri: &'a Uri<'a>,
    /// The `X-cisco-dest-route-string` value, if present.
    pub dest_route: Option<&'a [u8]>,
    /// The whole request.
    pub message: &'a Message,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteResult {
    /// Forward to these destinations, trying them in order.
    Forward(Target),
    /// Answer with this final status.
    Reject {
        /// The status code (403, 404, ...).
        status: u16,
        /// The reason phrase.
        reason: Cow<'static, str>,
    },
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The trunk name, for logs and metrics.
    pub trunk: String,
    /// Resolved destinations in failover order; down destinations already left out.
    pub destinations: Vec<Peer>,
    /// Header lines to add, e.g. `("X-cisco-dest-route-string", "<sip:hq.route>")`.
    pub headers: Vec<(String, String)>,
}

/// How much the transaction layer holds: live transactions (those finished but still
/// absorbing retransmissions included) and queued timer entries (stale ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionCounts {
    /// Client transactions.
    pub client: usize,
    /// Server transactions.
    pub server: usize,
    /// Queued timer entries.
    pub timer_entries: usize,
}

/// Proxy settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Transaction timers.
    pub transaction: transaction::Config,
    /// Our addresses, one per listening transport, as put into Via and Record-Route.
    pub local: Vec<LocalAddr>,
    /// Host names that also mean this proxy (for Route, Request-URI and OPTIONS checks).
    pub aliases: Vec<String>,
    /// The `Server` header value in responses we generate.
    pub server: String,
    /// Insert Record-Route into dialog-creating requests. Default true.
    pub record_route: bool,
    /// Requests in progress beyond which new ones get `503` with `Retry-After`, so that an
    /// overload cannot grow memory without bound. Default 200,000.
    pub max_pending: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            transaction: transaction::Config::default(),
            local: Vec::new(),
            aliases: Vec::new(),
            server: "ils-edge".to_owned(),
            record_route: true,
            max_pending: 200_000,
        }
    }
}

/// What the driver should know about: destination health and pings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A destination answered a forwarded request.
    DestinationAnswered {
        /// The destination.
        peer: Peer,
    },
    /// A destination failed a forwarded request; the proxy failed over if it could.
    DestinationFailed {
        /// The destination.
        peer: Peer,
        /// Why.
        reason: FailReason,
    },
    /// An OPTIONS ping got a final response.
    PingAnswered {
        /// The pinged destination.
        peer: Peer,
        /// The status code.
        status: u16,
    },
    /// An OPTIONS ping got no answer or could not be sent.
    PingFailed {
        /// The pinged destination.
        peer: Peer,
    },
}

impl Event {
    /// The destination the event is about.
    pub fn peer(&self) -> Peer {
        match *self {
            Self::DestinationAnswered { peer }
            | Self::DestinationFailed { peer, .. }
            | Self::PingAnswered { peer, .. }
            | Self::PingFailed { peer } => peer,
        }
    }
}

/// Why a destination failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// No response within the response timeout.
    Timeout,
    /// The request could not be sent.
    Transport,
    /// It answered `503 Service Unavailable`.
    Unavailable,
}

/// How often a destination that keeps answering is reported again.
const ANSWERED_EVERY: Duration = Duration::from_secs(1);
/// Destinations remembered as answering before stale ones are forgotten.
const ANSWERED_MAX: usize = 4096;

/// The proxy state machine.
#[derive(Debug)]
pub struct Core<R> {
    config: Config,
    router: R,
    tsx: Transactions,
    /// Boxed, like the transactions, so a resize moves pointers.
    contexts: Map<ServerId, Box<Context>>,
    by_client: Map<ClientId, ServerId>,
    pings: Map<ClientId, Peer>,
    events: Events,
    to_tag_seed: u64,
    draining: bool,
}

/// Events waiting for the driver.
#[derive(Debug, Default)]
struct Events {
    queue: VecDeque<Event>,
    /// When each destination was last reported answering.
    answered: Map<Peer, Instant>,
}

impl Events {
    /// Queues an event for the driver. A destination that keeps answering is reported again
    /// at most once per [`ANSWERED_EVERY`] until something else is reported about it: health
    /// changes only on a different event, and one event per call would cost the driver a
    /// cross-thread wake-up per call.
    fn report(&mut self, now: Instant, event: Event) {
        let peer = event.peer();
        match event {
            Event::DestinationAnswered { .. } => {
                if let Some(&at) = self.answered.get(&peer)
                    && now.saturating_duration_since(at) < ANSWERED_EVERY
                {
                    return;
                }
                if self.answered.len() >= ANSWERED_MAX {
                    // In-dialog requests reach phones, not only trunk destinations. Forget the
                    // stale entries, or all of them when most are fresh, so this scan runs at
                    // most once per ANSWERED_MAX / 2 new destinations.
                    self.answered
                        .retain(|_, at| now.saturating_duration_since(*at) < ANSWERED_EVERY);
                    if self.answered.len() >= ANSWERED_MAX / 2 {
                        self.answered.clear();
                    }
                }
                self.answered.insert(peer, now);
            }
            Event::DestinationFailed { .. }
            | Event::PingAnswered { .. }
            | Event::PingFailed { .. } => {
                self.answered.remove(&peer);
            }
        }
        self.queue.push_back(event);
    }
}

/// One proxied request: the response context of RFC 3261 §16.
#[derive(Debug)]
struct Context {
    request: Message,
    source: Peer,
    method: Method,
    plan: request::Plan,
    targets: Vec<Peer>,
    /// The next destination to try.
    next: usize,
    /// The pending branch and its destination.
    branch: Option<(ClientId, Peer)>,
    provisional: bool,
    cancel_pending: bool,
    cancelled: bool,
    /// The best final response so far: status and the response to forward (None when we
    /// synthesise it).
    best: Option<(u16, Option<Message>)>,
}

// === impl Core ===

impl<R: Route> Core<R> {
    /// A proxy with no transactions.
    ///
    /// The addresses in [`Config::local`] go into Via and Record-Route as they are, so they
    /// must be the concrete addresses peers reach us on, not `0.0.0.0` or `::`.
    pub fn new(config: Config, router: R) -> Self {
        for local in config.local.iter().filter(|l| l.addr.ip().is_unspecified()) {
            tracing::warn!(addr = %local.addr, "unspecified local address in Via and Record-Route");
        }
        let tsx = Transactions::new(config.transaction.clone());
        Self {
            config,
            router,
            tsx,
            contexts: Map::default(),
            by_client: Map::default(),
            pings: Map::default(),
            events: Events::default(),
            to_tag_seed: 0x1e5e_d6e0,
            draining: false,
        }
    }

    /// The router.
    pub fn router(&self) -> &R {
        &self.router
    }

    /// Replaces the router (hot reload); requests in progress keep their destinations.
    pub fn set_router(&mut self, router: R) {
        self.router = router;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Parses and processes one received message (a UDP datagram or a framed stream message).
    /// A request that does not parse is answered `400` (or `505`) when a response can be
    /// formed; anything else unparsable is dropped.
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, bytes: Bytes) {
        match Message::parse(bytes.clone()) {
            Ok(msg) => self.handle_message(now, from, msg),
            Err(err) => {
                tracing::debug!(peer = %from.addr, error = %err, "dropping unparsable message");
                self.reject_malformed(from, bytes, &err);
            }
        }
    }

    /// Processes one parsed message.
    pub fn handle_message(&mut self, now: Instant, from: Peer, msg: Message) {
        self.tsx.handle_message(now, from, msg);
        self.process(now);
    }

    /// Fires due deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tsx.handle_timeout(now);
        self.process(now);
    }

    /// Reports that a [`Transmit`] with `client` set could not be sent.
    pub fn handle_transport_error(&mut self, now: Instant, client: ClientId) {
        self.tsx.handle_transport_error(client);
        self.process(now);
    }

    /// Sends an OPTIONS ping to a destination; the result arrives as [`Event::PingAnswered`]
    /// or [`Event::PingFailed`].
    pub fn send_ping(&mut self, now: Instant, to: Peer) -> ClientId {
        let seq = self.tsx_seq();
        let req = addr::options_ping(&self.config, to, seq);
        let id = self.tsx.send_request(now, to, req);
        self.pings.insert(id, to);
        id
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tsx.poll_transmit()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.queue.pop_front()
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tsx.poll_timeout()
    }

    /// While draining, new out-of-dialog requests get `503` with `Retry-After`; requests
    /// inside dialogs, CANCEL, ACK and responses go on, so calls in progress can finish.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Requests in progress, for metrics and graceful shutdown.
    pub fn pending(&self) -> usize {
        self.contexts.len()
    }

    /// The transaction layer's size, for metrics.
    pub fn transaction_counts(&self) -> TransactionCounts {
        let (client, server) = self.tsx.len();
        TransactionCounts {
            client,
            server,
            timer_entries: self.tsx.timer_entries(),
        }
    }

    fn process(&mut self, now: Instant) {
        while let Some(event) = self.tsx.poll_event() {
            match event {
                TsxEvent::Request { id, from, msg } => {
                    let span = tracing::debug_span!(
                        "tsx",
                        method = %msg.method().map_or(std::borrow::Cow::Borrowed(""), |m| String::from_utf8_lossy(m.as_bytes())),
                        call_id = %String::from_utf8_lossy(msg.call_id().unwrap_or_default()),
                    );
                    let _enter = span.enter();
                    self.on_request(now, id, from, msg);
                }
                TsxEvent::Cancel {
                    id,
                    invite,
                    from: _,
                    msg,
                } => self.on_cancel(now, id, invite, &msg),
                TsxEvent::Ack { from, msg } => self.on_ack(from, &msg),
                TsxEvent::Response { id, msg } => self.on_response(now, id, msg),
                TsxEvent::StrayResponse { from: _, msg } => self.forward_stray_response(&msg),
                TsxEvent::TimedOut { id, provisional } => {
                    self.on_branch_failure(now, id, provisional, false)
                }
                TsxEvent::TransportFailed { id } => self.on_branch_failure(now, id, false, true),
                TsxEvent::AckTimedOut { id } => {
                    tracing::debug!(?id, "no ACK for a final response");
                }
            }
        }
    }

    fn tsx_seq(&mut self) -> u64 {
        self.to_tag_seed = self.to_tag_seed.wrapping_add(1);
        self.to_tag_seed
    }
}
