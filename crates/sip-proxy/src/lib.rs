//! SIP proxy: receives requests on UDP, TCP and TLS, routes them with a pluggable
//! [`proxy::Route`] and forwards them statefully to a trunk (RFC 3261 §16).
//!
//! The protocol core ([`message`], [`transaction`], [`proxy`]) does no I/O and reads no clock:
//! callers pass bytes and `now` in, and take transmits, events and deadlines out.
//!
//! ```text
//!  socket ──bytes──▶ message::Message::parse ──▶ Transactions ──Event──▶ proxy::Core ──▶ Route
//!  socket ◀─Transmit── Transactions ◀────────── proxy::Core (forward, respond, fail over) ◀┘
//! ```
#![forbid(unsafe_code)]

pub mod message;
pub mod proxy;
pub mod transaction;
pub mod transport;

pub use proxy::{Core, Route, RouteRequest, RouteResult, Target};
pub use transport::{Proxy, ProxyHandle};
