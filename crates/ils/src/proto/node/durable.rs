//! Durability, sans-IO: what the node hands its driver to write to disk, what it holds back
//! until that write returns, and how it is restored from disk at start.
//!
//! With [`NodeConfig::durable`](super::NodeConfig::durable) set, the node:
//! - collects every change of its state worth keeping (learned records with their origin's
//!   position, repairs and collected tombstones, its own records and version counter, changed
//!   rows of the peer vector) into one open batch, which the driver takes with
//!   [`Node::take_durable`], writes in one transaction, and confirms with
//!   [`Node::persisted`]: group commit, one batch in flight at a time;
//! - acknowledges a peer's `Records` only once the batch holding them is on disk, so a crash
//!   at any point loses nothing that was acknowledged (the peer resends what was not);
//! - sends its own records only once they are on disk, so a version it issued is never
//!   issued again for another change after a crash.
//!
//! Memory stays bounded: a peer may have at most twice the flow-control window of `Records`
//! frames unacknowledged, beyond which its link is refused.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use dialplan::{ClusterId, DirectoryUri, Role, RouteString};

use super::{LinkId, Node, OWN, PeerState};
use crate::learned::{LearnedBatch, LearnedChange};
use crate::proto::records::{Applied, OriginIdx};

/// One record change as written to disk: a live record, or a tombstone (`route: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// The canonical directory URI.
    pub uri: String,
    /// The route string; `None` for a tombstone.
    pub route: Option<String>,
    /// The origin's version of the change.
    pub version: u64,
}

/// One origin's changes in a [`DurableBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginDelta {
    /// The origin cluster.
    pub origin: ClusterId,
    /// Records added, changed or tombstoned.
    pub changed: Vec<RecordChange>,
    /// URIs dropped altogether (tombstones collected, records a repair found removed).
    pub forgotten: Vec<String>,
    /// The origin's position (highest version held) once this batch is applied.
    pub position: u64,
    /// The highest version of a collected tombstone of the origin.
    pub gc_floor: u64,
}

/// One row of the peer vector as written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    /// The cluster ID.
    pub cluster_id: ClusterId,
    /// The cluster name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Addresses it is dialed on.
    pub addresses: Vec<String>,
    /// Route strings it advertises.
    pub route_strings: Vec<String>,
    /// Its state when written.
    pub state: PeerState,
    /// Its certificate (DER), pinned after the password vouched for it.
    pub pinned_cert: Option<Vec<u8>>,
}

/// Everything to write in one transaction, from [`Node::take_durable`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurableBatch {
    /// Hand it back to [`Node::persisted`] once written.
    pub ticket: u64,
    /// Learned records by origin, with positions.
    pub origins: Vec<OriginDelta>,
    /// Our own records changed (tombstones included), when `own_changed`.
    pub own: Vec<RecordChange>,
    /// Our own URIs dropped (collected tombstones).
    pub own_forgotten: Vec<String>,
    /// Our version counter (it never goes down).
    pub own_version: u64,
    /// The highest version of a collected own tombstone.
    pub own_gc_floor: u64,
    /// Rows of the peer vector that changed.
    pub peers: Vec<PeerRow>,
}

impl DurableBatch {
    /// Records (learned and own) in the batch.
    pub fn records(&self) -> usize {
        self.own.len() + self.origins.iter().map(|o| o.changed.len()).sum::<usize>()
    }
}

/// One change in the open batch: URI, route string (`None`: tombstone), version.
type Change = (Arc<str>, Option<Arc<str>>, u64);

/// The node's durability state.
#[derive(Debug, Default)]
pub(super) struct Durable {
    pub(super) enabled: bool,
    /// The ticket of the open batch.
    next_ticket: u64,
    /// The batch being written, and the own version it brings to disk.
    in_flight: Option<(u64, u64)>,
    changed: HashMap<OriginIdx, Vec<Change>>,
    forgotten: HashMap<OriginIdx, Vec<Arc<str>>>,
    touched: BTreeSet<OriginIdx>,
    peers: BTreeSet<ClusterId>,
    /// Acks held back until the batch of their ticket is on disk, in arrival order.
    acks: VecDeque<(u64, LinkId, u64)>,
    /// Our highest own version on disk: own records above it are not sent yet.
    pub(super) own_on_disk: u64,
}

impl Durable {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            next_ticket: 1,
            ..Self::default()
        }
    }

    fn open_is_empty(&self) -> bool {
        self.touched.is_empty() && self.peers.is_empty()
    }

    pub(super) fn record(&mut self, o: OriginIdx, uri: &Arc<str>, route: Option<Arc<str>>, v: u64) {
        if self.enabled {
            self.changed
                .entry(o)
                .or_default()
                .push((uri.clone(), route, v));
            self.touched.insert(o);
        }
    }

    pub(super) fn forget(&mut self, o: OriginIdx, uri: Arc<str>) {
        if self.enabled {
            self.forgotten.entry(o).or_default().push(uri);
            self.touched.insert(o);
        }
    }

    pub(super) fn touch(&mut self, o: OriginIdx) {
        if self.enabled {
            self.touched.insert(o);
        }
    }

    pub(super) fn peer(&mut self, id: &ClusterId) {
        if self.enabled {
            self.peers.insert(id.clone());
        }
    }

    /// Unacknowledged `Records` frames received on `link`.
    pub(super) fn held_acks(&self, link: LinkId) -> usize {
        self.acks.iter().filter(|(_, l, _)| *l == link).count()
    }

    /// Whether an ack may go out at once: nothing received before it waits for the disk.
    fn ack_now(&self) -> bool {
        !self.enabled || (self.open_is_empty() && self.in_flight.is_none())
    }
}

impl Node {
    /// Takes the open batch of changes to write, if any and if none is being written.
    pub fn take_durable(&mut self) -> Option<DurableBatch> {
        let d = &mut self.durable;
        if !d.enabled || d.in_flight.is_some() || d.open_is_empty() {
            return None;
        }
        let ticket = d.next_ticket;
        d.next_ticket += 1;
        let mut changed = std::mem::take(&mut d.changed);
        let mut forgotten = std::mem::take(&mut d.forgotten);
        let touched = std::mem::take(&mut d.touched);
        let peers = std::mem::take(&mut d.peers);
        let change = |(u, r, v): Change| RecordChange {
            uri: u.to_string(),
            route: r.map(|r| r.to_string()),
            version: v,
        };
        let mut batch = DurableBatch {
            ticket,
            ..DurableBatch::default()
        };
        for o in touched {
            let log = &self.store.origins[o];
            let recs: Vec<RecordChange> = changed
                .remove(&o)
                .unwrap_or_default()
                .into_iter()
                .map(change)
                .collect();
            let gone: Vec<String> = forgotten
                .remove(&o)
                .unwrap_or_default()
                .iter()
                .map(|u| u.to_string())
                .collect();
            if o == OWN {
                batch.own = recs;
                batch.own_forgotten = gone;
            } else {
                batch.origins.push(OriginDelta {
                    origin: log.id.clone(),
                    changed: recs,
                    forgotten: gone,
                    position: log.max_version,
                    gc_floor: log.gc_floor,
                });
            }
        }
        let own = &self.store.origins[OWN];
        batch.own_version = own.max_version;
        batch.own_gc_floor = own.gc_floor;
        batch.peers = peers.iter().filter_map(|id| self.peers.row(id)).collect();
        self.durable.in_flight = Some((ticket, own.max_version));
        Some(batch)
    }

    /// Whether a batch is ready for [`take_durable`](Self::take_durable).
    pub fn durable_pending(&self) -> bool {
        let d = &self.durable;
        d.enabled && d.in_flight.is_none() && !d.open_is_empty()
    }

    /// The batch `ticket` is on disk: sends the acknowledgements and own records it held back.
    pub fn persisted(&mut self, now: Instant, ticket: u64) {
        let d = &mut self.durable;
        match d.in_flight {
            Some((t, own)) if t == ticket => {
                d.in_flight = None;
                d.own_on_disk = d.own_on_disk.max(own);
            }
            _ => return,
        }
        let all = d.open_is_empty();
        let mut release = Vec::new();
        while let Some(&(t, link, seq)) = d.acks.front() {
            if t > ticket && !all {
                break;
            }
            d.acks.pop_front();
            release.push((link, seq));
        }
        for (link, seq) in release {
            if let Some(l) = self.links.get_mut(&link) {
                l.session.ack(now, seq);
            }
        }
        self.after(now);
    }

    /// Acknowledges `seq` on `link` now, or once what arrived before it is on disk.
    pub(super) fn ack_when_durable(&mut self, now: Instant, link: LinkId, seq: u64) {
        if self.durable.ack_now() {
            if let Some(l) = self.links.get_mut(&link) {
                l.session.ack(now, seq);
            }
        } else {
            let t = self.durable.next_ticket;
            self.durable.acks.push_back((t, link, seq));
        }
    }

    // === restore (before any link opens) ===

    /// Restores our own records and version counter from disk.
    pub fn restore_own(
        &mut self,
        now: Instant,
        records: impl IntoIterator<Item = RecordChange>,
        own_version: u64,
        gc_floor: u64,
    ) {
        for r in records {
            let key: Arc<str> = Arc::from(r.uri);
            let route = r.route.map(|x| self.store.intern(&x));
            self.store.apply(now, OWN, &key, r.version, route);
        }
        let log = &mut self.store.origins[OWN];
        log.max_version = log.max_version.max(own_version);
        log.gc_floor = log.gc_floor.max(gc_floor);
        self.durable.own_on_disk = log.max_version;
    }

    /// Restores an origin's position and tombstone floor from disk.
    pub fn restore_position(&mut self, origin: &ClusterId, position: u64, gc_floor: u64) {
        if *origin == self.identity.cluster_id {
            return;
        }
        let o = self.store.origin(origin);
        let log = &mut self.store.origins[o];
        log.max_version = log.max_version.max(position);
        log.gc_floor = log.gc_floor.max(gc_floor);
    }

    /// Restores learned records of one origin from disk and puts the live ones into the
    /// learned table. Returns how many records were invalid (skipped).
    pub fn restore_learned(
        &mut self,
        now: Instant,
        origin: &ClusterId,
        records: impl IntoIterator<Item = RecordChange>,
    ) -> usize {
        if *origin == self.identity.cluster_id {
            return 0;
        }
        let o = self.store.origin(origin);
        let mut changes = Vec::new();
        let mut invalid = 0;
        for r in records {
            let Ok(uri) = DirectoryUri::parse(&r.uri, self.config.uri_policy) else {
                invalid += 1;
                continue;
            };
            let route = match r.route.as_deref().map(RouteString::new) {
                Some(Ok(rs)) => Some(rs),
                Some(Err(_)) => {
                    invalid += 1;
                    continue;
                }
                None => None,
            };
            let key: Arc<str> = Arc::from(r.uri);
            let interned = route.as_ref().map(|rs| self.store.intern(rs.as_str()));
            let applied = self.store.apply(now, o, &key, r.version, interned);
            if let (Applied::Upserted, Some(route_string)) = (applied, route) {
                changes.push(LearnedChange::Upsert {
                    uri,
                    route_string,
                    version: r.version,
                });
            }
        }
        if !changes.is_empty() {
            let report = self.sink.apply(LearnedBatch {
                origin: origin.clone(),
                changes,
            });
            self.stats.table_refused_cap += report.refused_cap as u64;
            self.stats.table_conflicts += report.new_conflicts as u64;
        }
        invalid
    }

    /// Restores a row of the peer vector from disk (as down until a link says otherwise).
    pub fn restore_peer(&mut self, row: PeerRow) {
        if row.cluster_id != self.identity.cluster_id {
            self.peers.restore(row);
        }
    }
}
