//! The node's counters and the report of an advertise.

use std::collections::BTreeMap;

/// The result of [`Node::advertise`](super::Node::advertise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvertiseReport {
    /// URIs new to the advertised set.
    pub added: usize,
    /// URIs whose route string changed.
    pub changed: usize,
    /// URIs no longer advertised (now tombstones).
    pub removed: usize,
    /// URIs advertised as before.
    pub unchanged: usize,
}

/// Counters since the node started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Frames handled.
    pub frames_in: u64,
    /// Frames handed to the driver.
    pub frames_out: u64,
    /// Records sent (pushes, sync answers and repairs).
    pub records_sent: u64,
    /// Records received.
    pub records_received: u64,
    /// Received records that changed our state.
    pub records_applied: u64,
    /// Received records we already held (or newer).
    pub records_stale: u64,
    /// Received records with an invalid URI or route string (dropped).
    pub records_invalid: u64,
    /// Received records dropped because `max_learned_records` was reached.
    pub records_over_limit: u64,
    /// `SyncRequest`s answered.
    pub syncs_served: u64,
    /// Anti-entropy passes run (one per link per interval).
    pub anti_entropy_passes: u64,
    /// Digest entries that did not match ours.
    pub digest_mismatches: u64,
    /// Repairs requested from peers.
    pub repairs_requested: u64,
    /// Records added, changed or removed by repairs.
    pub records_repaired: u64,
    /// Tombstones collected.
    pub tombstones_collected: u64,
    /// New URIs the learned table refused at its cap.
    pub table_refused_cap: u64,
    /// URIs the learned table reported as claimed by two origins.
    pub table_conflicts: u64,
    /// Links refused by us, by reason label.
    pub refused_by_us: BTreeMap<&'static str, u64>,
    /// Links refused by peers, by reason label.
    pub refused_by_peer: BTreeMap<&'static str, u64>,
    /// Authentication refusals by us, by failure code (`wrong_password`, ...).
    pub auth_refused_by_us: BTreeMap<&'static str, u64>,
    /// Authentication refusals by peers, by the failure code they sent.
    pub auth_refused_by_peer: BTreeMap<&'static str, u64>,
    /// Links that completed the handshake.
    pub links_up: u64,
    /// Duplicate links closed.
    pub duplicate_links: u64,
}
