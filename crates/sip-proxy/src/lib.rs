//! SIP proxy: receives requests on UDP, TCP and TLS, routes them with a pluggable
//! [`Route`] and forwards them statefully to a trunk (RFC 3261 §16).
//!
//! The protocol core ([`message`], [`transaction`], [`proxy`]) does no I/O and reads no clock:
//! callers pass bytes and `now` in, and take transmits, events and deadlines out. The
//! [`transport`] module is the tokio driver around it, and [`trunk`] keeps each trunk's
//! resolved destinations and their OPTIONS-ping health for the [`Route`] implementation.
//!
//! ```text
//!  socket ──bytes──▶ message::Message::parse ──▶ Transactions ──Event──▶ proxy::Core ──▶ Route
//!  socket ◀─Transmit── Transactions ◀────────── proxy::Core (forward, respond, fail over) ◀┘
//!                                                      │ Event (destination health, pings)
//!                                                      ▼
//!                                  trunk::monitor ──▶ trunk::TrunkTable ◀── Route::route
//! ```
//!
//! Layout: `message/` (parser, editor, framer), `transaction/` (RFC 3261 §17 timers and
//! matching), `proxy/` (§16 request and response processing), `transport/` (sockets, timer
//! task, shutdown), `trunk/` (destination table, DNS SRV, pings).
#![forbid(unsafe_code)]

pub mod message;
pub mod proxy;
pub mod transaction;
pub mod transport;
pub mod trunk;

pub use proxy::{Core, Route, RouteRequest, RouteResult, Target, TransactionCounts};
pub use transport::{Proxy, ProxyHandle};
