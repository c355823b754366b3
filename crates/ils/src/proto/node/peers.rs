//! The peer vector: every cluster known in the network, merged by last-writer-wins stamps,
//! and the operator's view of it (`ils-edge peers`, like CUCM's `utils ils showpeerinfo`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, Role};

use super::durable::PeerRow;
use super::{LinkId, Node, OWN};
use crate::proto::handshake::{LocalIdentity, PeerHello};
use crate::proto::wire::{PeerEntry, PeerVector, WirePeerState, WireRole};

/// A cluster's state as this node knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Connected: to us directly, or to its hub as last reported.
    Up,
    /// Disconnected, as last reported.
    Down,
    /// No report yet.
    Unknown,
}

impl PeerState {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the peer vector, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Cluster ID.
    pub cluster_id: ClusterId,
    /// Cluster name.
    pub cluster_name: String,
    /// Role.
    pub role: Role,
    /// Addresses it can be dialed on.
    pub addresses: Vec<String>,
    /// Route strings it advertises.
    pub route_strings: Vec<String>,
    /// The hub it is attached to (a hub: itself).
    pub hub: Option<ClusterId>,
    /// Up, down or unknown.
    pub state: PeerState,
    /// This row is our own cluster.
    pub local: bool,
    /// We have a link to it.
    pub linked: bool,
    /// How long ago we (or the reporting hub) last heard from it.
    pub last_seen: Option<Duration>,
    /// How long ago our last sync with it completed (linked peers).
    pub last_sync: Option<Duration>,
    /// Live records we hold from it (for our own row: what we advertise).
    pub records: u64,
    /// Highest version we hold from it.
    pub max_version: u64,
    /// Replication lag towards it: records it has not yet acknowledged (linked peers).
    pub pending_records: u64,
}

#[derive(Debug, Clone)]
struct PeerRecord {
    name: String,
    role: Role,
    addresses: Vec<String>,
    route_strings: Vec<String>,
    hub: Option<ClusterId>,
    state: PeerState,
    stamp: u64,
    last_seen: Option<Instant>,
    direct: Option<LinkId>,
    /// The certificate pinned for it after the password vouched for it (DER).
    pinned: Option<Arc<[u8]>>,
}

/// Every other cluster this node knows.
#[derive(Debug)]
pub(super) struct PeerTable {
    entries: BTreeMap<ClusterId, PeerRecord>,
    own_stamp: u64,
}

impl PeerTable {
    pub(super) fn new(_identity: &LocalIdentity) -> Self {
        Self {
            entries: BTreeMap::new(),
            own_stamp: 1,
        }
    }

    /// The name and state we hold for a cluster ID.
    pub(super) fn name_of(&self, id: &ClusterId) -> Option<(String, PeerState)> {
        self.entries.get(id).map(|e| (e.name.clone(), e.state))
    }

    /// Every hub we know, with its addresses.
    pub(super) fn hubs(&self) -> impl Iterator<Item = (&ClusterId, &[String])> {
        self.entries
            .iter()
            .filter(|(_, e)| e.role == Role::Hub)
            .map(|(id, e)| (id, e.addresses.as_slice()))
    }

    /// A link to `peer` came up: we are now the authority on its entry.
    pub(super) fn linked(
        &mut self,
        now: Instant,
        peer: &PeerHello,
        link: LinkId,
        me: &LocalIdentity,
        pinned: Option<Vec<u8>>,
    ) {
        let old = self.entries.get(&peer.cluster_id);
        let stamp = old.map_or(0, |e| e.stamp) + 1;
        let pinned = pinned
            .map(Arc::from)
            .or_else(|| old.and_then(|e| e.pinned.clone()));
        let hub = match (peer.role, me.role) {
            (Role::Hub, _) => Some(peer.cluster_id.clone()),
            (_, Role::Hub) => Some(me.cluster_id.clone()),
            _ => None,
        };
        self.entries.insert(
            peer.cluster_id.clone(),
            PeerRecord {
                name: peer.cluster_name.clone(),
                role: peer.role,
                addresses: peer.addresses.clone(),
                route_strings: peer.route_strings.iter().map(|r| r.to_string()).collect(),
                hub,
                state: PeerState::Up,
                stamp,
                last_seen: Some(now),
                direct: Some(link),
                pinned,
            },
        );
    }

    /// The row to write to disk for `id`.
    pub(super) fn row(&self, id: &ClusterId) -> Option<PeerRow> {
        let e = self.entries.get(id)?;
        Some(PeerRow {
            cluster_id: id.clone(),
            name: e.name.clone(),
            role: e.role,
            addresses: e.addresses.clone(),
            route_strings: e.route_strings.clone(),
            state: e.state,
            pinned_cert: e.pinned.as_deref().map(<[u8]>::to_vec),
        })
    }

    /// A row read from disk: known, down until heard of, with the lowest stamp so that any
    /// report from a hub replaces it.
    pub(super) fn restore(&mut self, row: PeerRow) {
        self.entries.insert(
            row.cluster_id,
            PeerRecord {
                name: row.name,
                role: row.role,
                addresses: row.addresses,
                route_strings: row.route_strings,
                hub: None,
                state: PeerState::Down,
                stamp: 0,
                last_seen: None,
                direct: None,
                pinned: row.pinned_cert.map(Arc::from),
            },
        );
    }

    /// Our link to `id` went down.
    pub(super) fn unlinked(&mut self, now: Instant, id: &ClusterId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.state = PeerState::Down;
            e.stamp += 1;
            e.direct = None;
            e.last_seen = Some(now);
        }
    }

    /// We heard from `id` just now.
    pub(super) fn seen(&mut self, now: Instant, id: &ClusterId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.last_seen = Some(now);
        }
    }

    /// Our peer vector, our own entry first.
    pub(super) fn to_wire(&self, now: Instant, me: &LocalIdentity) -> PeerVector {
        let own = PeerEntry {
            cluster_id: me.cluster_id.to_string(),
            cluster_name: me.cluster_name.clone(),
            role: WireRole::from_role(me.role) as i32,
            addresses: me.addresses.clone(),
            route_strings: me.route_strings.iter().map(|r| r.to_string()).collect(),
            hub_id: me.cluster_id.to_string(),
            state: WirePeerState::Up as i32,
            seen_ago_ms: 0,
            stamp: self.own_stamp,
        };
        let others = self.entries.iter().map(|(id, e)| PeerEntry {
            cluster_id: id.to_string(),
            cluster_name: e.name.clone(),
            role: WireRole::from_role(e.role) as i32,
            addresses: e.addresses.clone(),
            route_strings: e.route_strings.clone(),
            hub_id: e.hub.as_ref().map(|h| h.to_string()).unwrap_or_default(),
            state: match e.state {
                PeerState::Up => WirePeerState::Up,
                PeerState::Down => WirePeerState::Down,
                PeerState::Unknown => WirePeerState::Unknown,
            } as i32,
            seen_ago_ms: e
                .last_seen
                .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64),
            stamp: e.stamp,
        });
        PeerVector {
            entries: std::iter::once(own).chain(others).collect(),
        }
    }

    /// Merges a hub's peer vector; returns the clusters whose entries changed.
    fn merge(&mut self, now: Instant, pv: PeerVector, me: &ClusterId) -> Vec<ClusterId> {
        let mut changed = Vec::new();
        for e in pv.entries {
            let Ok(id) = ClusterId::new(&e.cluster_id) else {
                continue;
            };
            let Some(role) = WireRole::to_role(e.role) else {
                continue;
            };
            if id == *me {
                continue;
            }
            let state = match WirePeerState::try_from(e.state) {
                Ok(WirePeerState::Up) => PeerState::Up,
                Ok(WirePeerState::Down) => PeerState::Down,
                _ => PeerState::Unknown,
            };
            let take = match self.entries.get(&id) {
                Some(old) if old.direct.is_some() => false,
                Some(old) => {
                    e.stamp > old.stamp
                        || (e.stamp == old.stamp
                            && state == PeerState::Up
                            && old.state != PeerState::Up)
                }
                None => true,
            };
            if !take {
                continue;
            }
            changed.push(id.clone());
            let last_seen = now.checked_sub(Duration::from_millis(e.seen_ago_ms));
            let pinned = self.entries.get(&id).and_then(|old| old.pinned.clone());
            self.entries.insert(
                id,
                PeerRecord {
                    name: e.cluster_name,
                    role,
                    addresses: e.addresses,
                    route_strings: e.route_strings,
                    hub: ClusterId::new(&e.hub_id).ok(),
                    state,
                    stamp: e.stamp,
                    last_seen,
                    direct: None,
                    pinned,
                },
            );
        }
        changed
    }
}

impl Node {
    /// Merges a peer vector received on `id` (only hubs' vectors count).
    pub(super) fn merge_vector(&mut self, now: Instant, id: LinkId, pv: PeerVector) {
        let from_hub = self
            .links
            .get(&id)
            .and_then(|l| l.peer.as_ref())
            .is_some_and(|p| p.role == Role::Hub);
        if !from_hub {
            return;
        }
        let changed = self.peers.merge(now, pv, &self.identity.cluster_id);
        if !changed.is_empty() {
            for id in &changed {
                self.durable.peer(id);
            }
            self.mark_vector_dirty();
        }
    }

    /// Notes that a frame arrived from the peer on `id`.
    pub(super) fn heard_from(&mut self, now: Instant, id: LinkId) {
        if let Some(p) = self.links.get(&id).and_then(|l| l.peer.as_ref()) {
            self.peers.seen(now, &p.cluster);
        }
    }

    /// The peer vector with replication state, our own cluster first.
    pub fn peers(&self, now: Instant) -> Vec<PeerInfo> {
        let own = &self.store.origins[OWN];
        let mut out = vec![PeerInfo {
            cluster_id: self.identity.cluster_id.clone(),
            cluster_name: self.identity.cluster_name.clone(),
            role: self.identity.role,
            addresses: self.identity.addresses.clone(),
            route_strings: self
                .identity
                .route_strings
                .iter()
                .map(|r| r.to_string())
                .collect(),
            hub: None,
            state: PeerState::Up,
            local: true,
            linked: false,
            last_seen: Some(Duration::ZERO),
            last_sync: None,
            records: own.live,
            max_version: own.max_version,
            pending_records: 0,
        }];
        for (id, e) in &self.peers.entries {
            let origin = self.store.find(id.as_str()).map(|o| &self.store.origins[o]);
            let link = e.direct.and_then(|l| self.links.get(&l));
            let pending = link.map_or(0, |l| {
                let me = self.identity.role;
                let Some(peer) = &l.peer else { return 0 };
                self.store
                    .origins
                    .iter()
                    .enumerate()
                    .filter(|(o, _)| super::replicate::relays(&self.store, me, *o, peer))
                    .map(|(o, log)| {
                        let acked = l.acked.get(&o).copied().unwrap_or(0);
                        // Counting is linear in the backlog; cap it so a huge backlog stays cheap.
                        log.by_version
                            .range(acked + 1..)
                            .take(PENDING_COUNT_CAP)
                            .count() as u64
                    })
                    .sum()
            });
            out.push(PeerInfo {
                cluster_id: id.clone(),
                cluster_name: e.name.clone(),
                role: e.role,
                addresses: e.addresses.clone(),
                route_strings: e.route_strings.clone(),
                hub: e.hub.clone(),
                state: e.state,
                local: false,
                linked: link.is_some_and(|l| l.session.is_up()),
                last_seen: e.last_seen.map(|t| now.saturating_duration_since(t)),
                last_sync: link
                    .and_then(|l| l.last_sync)
                    .map(|t| now.saturating_duration_since(t)),
                records: origin.map_or(0, |o| o.live),
                max_version: origin.map_or(0, |o| o.max_version),
                pending_records: pending,
            });
        }
        out
    }
}

const PENDING_COUNT_CAP: usize = 10_000_000;
