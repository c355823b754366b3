//! ILS replication network: tells every edge which cluster owns which directory URI.
//!
//! Clusters form a hub/spoke network: hubs mesh with each other, each spoke talks to one hub,
//! and hubs relay between hubs and their spokes. Every record carries its origin cluster and
//! the origin's version, so changes are pushed at once, a reconnect resends only what changed,
//! removals travel as tombstones, and a periodic digest comparison repairs anything missed.
//!
//! The protocol core ([`proto`]) does no I/O and reads no clock; the [`driver`] runs it over
//! tokio streams (plain TCP, or the TLS streams of the [`auth`] module) and [`Service`] is the
//! handle the daemon holds. [`auth`] authenticates peers (password, TLS, TLS + password) and
//! [`store`] keeps learned records, positions and the peer vector in SQLite.
//!
//! ```text
//!  stream ─bytes─▶ FrameDecoder ─Frame─▶ Node ──LearnedBatch──▶ LearnedSink (dial plan)
//!  stream ◀─bytes── encode ◀──Frame──── Node ◀──advertise(local URIs)── daemon
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod driver;
mod launch;
pub mod learned;
pub mod proto;
pub mod store;

pub use config::Config;
pub use driver::{Service, ServiceStats, StartError, Transport};
pub use launch::{LaunchError, STORE_FILE, Setup};
pub use learned::{ApplyReport, LearnedBatch, LearnedChange, LearnedSink, MemorySink};
pub use proto::{AdvertiseReport, PeerInfo, PeerState, Stats};
