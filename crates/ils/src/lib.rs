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
//!                                        │ DurableBatch (group commit) ▲ persisted → Acks
//!                                        ▼                            │
//!                                      store (SQLite, ils.db) ────────┘
//! ```
//!
//! # The daemon's API
//!
//! ```text
//! Setup { cluster_id, cluster_name, role, route_strings, registrar, backup_hubs, auth,
//!         password, allow_plaintext_password, sync_interval, data_dir,
//!         trusted_certificates, trusted_cas, identity, advertise_addrs, uri_policy,
//!         throttle }                                   // Setup::new(id, name, role, dir)
//! Service::launch(setup, Arc<LearnedTable>).await -> Result<Service, LaunchError>
//! service.serve_tls(TcpListener)      -> Result<SocketAddr, StartError>   // port 7501
//! service.serve_password(TcpListener) -> Result<SocketAddr, StartError>   // port 7502
//! service.advertise(iter of (DirectoryUri, RouteString)) -> AdvertiseReport
//! service.peers() -> Vec<PeerInfo>        service.stats() -> ServiceStats
//! service.shutdown(grace).await
//! ```
//!
//! [`Service::launch`] creates the data directory, loads or creates the TLS identity
//! ([`auth::Identity::load_or_create`]), builds the trust store, opens the store, fills the
//! learned table and restores the node from it before any link opens, then starts dialing.
//! Errors ([`LaunchError`]) name the file and the reason. [`Service::start`] runs a node
//! without store or TLS (tests, benchmarks).
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
