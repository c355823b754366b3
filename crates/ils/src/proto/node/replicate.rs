//! Replication on established links: relay rules, streaming by per-origin cursors (pushes and
//! sync answers are the same stream), applying received records, anti-entropy and repair.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use dialplan::{ClusterId, DirectoryUri, Role, RouteString};

use super::{Event, Link, LinkId, LinkPeer, Node, OWN};
use crate::learned::{LearnedBatch, LearnedChange};
use crate::proto::records::{Applied, BUCKETS, OriginIdx, Store, Via, bucket};
use crate::proto::wire::{
    Digest, DigestEntry, Frame, Position, Record, Records, RepairDone, RepairRequest, SyncDone,
    SyncRequest,
};

/// Records of some buckets of one origin owed to a peer that asked for a repair.
#[derive(Debug)]
pub(super) struct RepairJob {
    origin: OriginIdx,
    origin_name: String,
    keys: VecDeque<Arc<str>>,
    max: u64,
    buckets: Vec<u32>,
}

/// A repair we asked for: the URIs the peer has sent so far.
#[derive(Debug, Default)]
pub(super) struct InRepair {
    seen: HashSet<Arc<str>>,
    changed: u64,
}

/// Whether `origin`'s records go to `peer`.
///
/// - Nothing goes back to its origin.
/// - A spoke sends only its own records, to its hub.
/// - A hub sends its spokes everything.
/// - A hub sends another hub its own records and its spokes' records, never records it
///   learned from a hub: hubs form a full mesh, so the other hub has its own link to that
///   hub. This is what keeps relay loop-free without any path bookkeeping.
pub(super) fn relays(store: &Store, me: Role, origin: OriginIdx, peer: &LinkPeer) -> bool {
    if origin == peer.origin {
        return false;
    }
    match (me, peer.role) {
        (Role::Hub, Role::Spoke) => true,
        (Role::Hub, Role::Hub) => origin == OWN || store.origins[origin].via == Via::Spoke,
        (Role::Spoke, Role::Hub) => origin == OWN,
        _ => false,
    }
}

impl Node {
    /// Sends whatever `link` may take now: the peer vector, then records by cursor, then
    /// repair records, within the flow-control window; then `SyncDone` when caught up.
    pub(super) fn pump(&mut self, now: Instant, id: LinkId) {
        let me = self.identity.role;
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if !l.session.is_up() {
            return;
        }
        if l.vector_dirty {
            l.vector_dirty = false;
            let pv = self.peers.to_wire(now, &self.identity);
            l.session.send(now, Frame::PeerVector(pv));
        }
        let Some(peer) = l.peer.clone() else {
            return;
        };
        if !l.synced {
            return;
        }
        let own_limit = if self.durable.enabled {
            self.durable.own_on_disk
        } else {
            u64::MAX
        };
        while l.session.can_send_records() {
            if let Some((records, origin, last)) =
                cursor_batch(&self.store, me, l, &peer, &self.config, own_limit)
            {
                self.stats.records_sent += records.records.len() as u64;
                let seq = l.session.send_records(now, records);
                l.in_flight.push_back((seq, origin, last));
                continue;
            }
            let Some((records, done)) = repair_batch(&self.store, l, self.config.batch_records)
            else {
                break;
            };
            if let Some(records) = records {
                self.stats.records_sent += records.records.len() as u64;
                l.session.send_records(now, records);
            }
            if let Some(done) = done {
                l.session.send(now, Frame::RepairDone(done));
            }
        }
        if l.sync_done_due && caught_up(&self.store, me, l, &peer, own_limit) {
            l.sync_done_due = false;
            self.stats.syncs_served += 1;
            let positions = self
                .store
                .origins
                .iter()
                .enumerate()
                .filter(|(o, _)| relays(&self.store, me, *o, &peer))
                .map(|(_, log)| Position {
                    origin: log.id.to_string(),
                    version: log.max_version,
                })
                .collect();
            l.session.send(now, Frame::SyncDone(SyncDone { positions }));
        }
    }

    /// Asks the peer for everything newer than what we hold.
    pub(super) fn send_sync_request(&mut self, now: Instant, id: LinkId) {
        let positions = self
            .store
            .origins
            .iter()
            .filter(|log| log.max_version > 0)
            .map(|log| Position {
                origin: log.id.to_string(),
                version: log.max_version,
            })
            .collect();
        if let Some(l) = self.links.get_mut(&id) {
            l.session
                .send(now, Frame::SyncRequest(SyncRequest { positions }));
        }
    }

    pub(super) fn on_message(&mut self, now: Instant, id: LinkId, frame: Frame) {
        match frame {
            Frame::PeerVector(pv) => self.merge_vector(now, id, pv),
            Frame::SyncRequest(req) => self.on_sync_request(now, id, req),
            Frame::Records(r) => self.on_records(now, id, r),
            Frame::SyncDone(_) => {
                let Some(l) = self.links.get_mut(&id) else {
                    return;
                };
                l.last_sync = Some(now);
                if let Some(p) = &l.peer {
                    self.events.push_back(Event::Synced {
                        link: id,
                        cluster: p.cluster.clone(),
                    });
                }
            }
            Frame::Digest(d) => self.on_digest(now, id, d),
            Frame::RepairRequest(r) => self.on_repair_request(id, r),
            Frame::RepairDone(d) => self.on_repair_done(id, d),
            _ => {}
        }
    }

    pub(super) fn on_acked(&mut self, now: Instant, id: LinkId, seq: u64) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        l.last_ack = Some(now);
        while l.in_flight.front().is_some_and(|(s, _, _)| *s <= seq) {
            if let Some((_, origin, version)) = l.in_flight.pop_front() {
                let a = l.acked.entry(origin).or_default();
                *a = (*a).max(version);
            }
        }
    }

    fn on_sync_request(&mut self, now: Instant, id: LinkId, req: SyncRequest) {
        let mut positions = HashMap::new();
        let mut reseed_to = None;
        for p in &req.positions {
            let Some(o) = self.store.find(&p.origin) else {
                continue;
            };
            if o == OWN && p.version > self.store.origins[OWN].max_version {
                reseed_to = Some(p.version);
            }
            positions.insert(o, p.version);
        }
        if let Some(floor) = reseed_to {
            self.reseed(now, floor);
        }
        let me = self.identity.role;
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        let Some(peer) = l.peer.clone() else {
            return;
        };
        // A peer behind a collected tombstone cannot be brought up to date by a delta: it gets
        // the whole origin as a repair, whose end removes what it should no longer hold.
        for (o, log) in self.store.origins.iter().enumerate() {
            let pos = positions.get(&o).copied().unwrap_or(0);
            if log.gc_floor > pos && relays(&self.store, me, o, &peer) {
                l.repairs_out.push_back(RepairJob {
                    origin: o,
                    origin_name: log.id.to_string(),
                    keys: log.entries.keys().cloned().collect(),
                    max: log.max_version,
                    buckets: (0..BUCKETS as u32).collect(),
                });
                positions.insert(o, log.max_version);
            }
        }
        l.cursors = positions;
        l.synced = true;
        l.sync_done_due = true;
    }

    fn on_records(&mut self, now: Instant, id: LinkId, r: Records) {
        let Some(peer) = self.links.get(&id).and_then(|l| l.peer.clone()) else {
            return;
        };
        // Acks wait for the disk; a peer that ignores the window would make us buffer.
        let window = self.config.session.window;
        if self.durable.enabled && self.durable.held_acks(id) >= 2 * window {
            let detail = format!(
                "the peer sent more than {} Records frames without waiting for acknowledgements",
                2 * window
            );
            if let Some(l) = self.links.get_mut(&id) {
                l.session
                    .refuse(now, crate::proto::RefuseReason::ProtocolError, detail);
            }
            return;
        }
        let n = r.records.len() as u64;
        self.stats.records_received += n;
        let origin_id = match ClusterId::new(&r.origin) {
            Ok(c) if c != self.identity.cluster_id => c,
            Ok(_) => {
                // Our own records never come back (relay is loop-free); a peer holding newer
                // ones than ours is handled by reseeding, not by taking them.
                self.stats.records_stale += n;
                return self.ack(now, id, r.seq);
            }
            Err(_) => {
                self.stats.records_invalid += n;
                return self.ack(now, id, r.seq);
            }
        };
        let o = self.store.origin(&origin_id);
        let routes: Vec<Option<(Arc<str>, RouteString)>> = r
            .routes
            .iter()
            .map(|s| {
                let rs = RouteString::new(s).ok()?;
                Some((self.store.intern(rs.as_str()), rs))
            })
            .collect();
        let mut room = self
            .config
            .max_learned_records
            .saturating_sub(self.store.learned_len());
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for rec in r.records {
            let Ok(uri) = DirectoryUri::parse(&rec.uri, self.config.uri_policy) else {
                self.stats.records_invalid += 1;
                continue;
            };
            let route = match rec.route {
                0 => None,
                i => match routes.get(i as usize - 1) {
                    Some(Some(route)) => Some(route),
                    _ => {
                        self.stats.records_invalid += 1;
                        continue;
                    }
                },
            };
            let key: Arc<str> = Arc::from(rec.uri);
            let known = self.store.origins[o].entries.contains_key(&key);
            if !known {
                if room == 0 {
                    self.stats.records_over_limit += 1;
                    continue;
                }
                room -= 1;
            }
            let applied = self
                .store
                .apply(now, o, &key, rec.version, route.map(|r| r.0.clone()));
            if applied != Applied::Stale {
                self.durable
                    .record(o, &key, route.map(|r| r.0.clone()), rec.version);
            }
            match (applied, route) {
                (Applied::Stale, _) => self.stats.records_stale += 1,
                (Applied::Upserted, Some((_, rs))) => changes.push(LearnedChange::Upsert {
                    uri,
                    route_string: rs.clone(),
                    version: rec.version,
                }),
                (Applied::Removed, _) => changes.push(LearnedChange::Remove {
                    uri,
                    version: rec.version,
                }),
                _ => {}
            }
            if r.repair {
                seen.push(key);
            }
        }
        let applied = changes.len() as u64;
        self.stats.records_applied += applied;
        if r.repair {
            if let Some(st) = self
                .links
                .get_mut(&id)
                .and_then(|l| l.repairs_in.get_mut(&o))
            {
                st.seen.extend(seen);
                st.changed += applied;
            }
        } else if applied > 0 && self.identity.role == Role::Hub {
            self.store.origins[o].via = match peer.role {
                Role::Spoke => Via::Spoke,
                _ => Via::Hub,
            };
        }
        self.apply_to_sink(origin_id, changes);
        self.ack(now, id, r.seq);
    }

    fn ack(&mut self, now: Instant, id: LinkId, seq: u64) {
        self.ack_when_durable(now, id, seq);
    }

    fn apply_to_sink(&mut self, origin: ClusterId, changes: Vec<LearnedChange>) {
        if changes.is_empty() {
            return;
        }
        let report = self.sink.apply(LearnedBatch {
            origin: origin.clone(),
            changes,
        });
        self.stats.table_refused_cap += report.refused_cap as u64;
        self.stats.table_conflicts += report.new_conflicts as u64;
        if report.refused_cap > 0 || report.new_conflicts > 0 {
            self.events.push_back(Event::TableReport { origin, report });
        }
    }

    /// Sends a digest on every synced link: one pass of anti-entropy.
    pub(super) fn anti_entropy(&mut self, now: Instant) {
        let me = self.identity.role;
        for l in self.links.values_mut() {
            let Some(peer) = l.peer.clone() else {
                continue;
            };
            if !l.synced || !l.session.is_up() {
                continue;
            }
            // Only origins whose cursor has caught up: everything in the digest has been sent
            // before it on this ordered link, so a mismatch is a real difference.
            let entries: Vec<DigestEntry> = self
                .store
                .origins
                .iter()
                .enumerate()
                .filter(|(o, log)| {
                    relays(&self.store, me, *o, &peer)
                        && l.cursors.get(o).copied().unwrap_or(0) >= log.max_version
                        && !l.repairs_out.iter().any(|j| j.origin == *o)
                })
                .map(|(_, log)| {
                    let (max_version, count, hash) = log.digest();
                    DigestEntry {
                        origin: log.id.to_string(),
                        max_version,
                        count,
                        hash,
                    }
                })
                .collect();
            self.stats.anti_entropy_passes += 1;
            if !entries.is_empty() {
                l.session.send(now, Frame::Digest(Digest { entries }));
            }
        }
    }

    fn on_digest(&mut self, now: Instant, id: LinkId, d: Digest) {
        for e in d.entries {
            let Ok(cid) = ClusterId::new(&e.origin) else {
                continue;
            };
            if cid == self.identity.cluster_id {
                continue;
            }
            let o = self.store.origin(&cid);
            let log = &self.store.origins[o];
            if log.max_version > e.max_version {
                continue; // we are ahead of this peer; it catches up from its own upstream
            }
            if log.digest() == (e.max_version, e.count, e.hash) {
                continue;
            }
            let Some(l) = self.links.get_mut(&id) else {
                return;
            };
            if l.repairs_in.contains_key(&o) {
                continue;
            }
            self.stats.digest_mismatches += 1;
            self.stats.repairs_requested += 1;
            l.repairs_in.insert(o, InRepair::default());
            let req = RepairRequest {
                origin: e.origin,
                bucket_hashes: log.buckets.to_vec(),
            };
            l.session.send(now, Frame::RepairRequest(req));
        }
    }

    fn on_repair_request(&mut self, id: LinkId, r: RepairRequest) {
        let me = self.identity.role;
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        let Some(peer) = l.peer.clone() else {
            return;
        };
        let origin = self
            .store
            .find(&r.origin)
            .filter(|o| relays(&self.store, me, *o, &peer));
        let Some(o) = origin else {
            // Not ours to answer: an empty repair tells the peer to stop waiting.
            l.repairs_out.push_back(RepairJob {
                origin: usize::MAX,
                origin_name: r.origin,
                keys: VecDeque::new(),
                max: 0,
                buckets: Vec::new(),
            });
            return;
        };
        let log = &self.store.origins[o];
        let mut differ = [false; BUCKETS];
        for (b, d) in differ.iter_mut().enumerate() {
            *d = r.bucket_hashes.get(b) != Some(&log.buckets[b]);
        }
        let keys = log
            .entries
            .keys()
            .filter(|k| differ[bucket(k)])
            .cloned()
            .collect();
        let buckets = (0..BUCKETS as u32)
            .filter(|b| differ[*b as usize])
            .collect();
        l.repairs_out.push_back(RepairJob {
            origin: o,
            origin_name: r.origin,
            keys,
            max: log.max_version,
            buckets,
        });
    }

    fn on_repair_done(&mut self, id: LinkId, d: RepairDone) {
        let Some(o) = self.store.find(&d.origin) else {
            return;
        };
        let Some(st) = self
            .links
            .get_mut(&id)
            .and_then(|l| l.repairs_in.remove(&o))
        else {
            return;
        };
        let mut in_repair = [false; BUCKETS];
        for b in &d.buckets {
            if let Some(x) = in_repair.get_mut(*b as usize) {
                *x = true;
            }
        }
        let log = &mut self.store.origins[o];
        // What the peer held in those buckets when it started was all sent: anything else
        // we hold there, not newer than its snapshot, was removed at the origin.
        let gone: Vec<Arc<str>> = log
            .entries
            .iter()
            .filter(|(k, e)| {
                in_repair[bucket(k)] && e.version <= d.max_version && !st.seen.contains(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut changes = Vec::new();
        for k in gone {
            let live = log.forget(&k).is_some_and(|e| e.route.is_some());
            self.durable.forget(o, k.clone());
            if live && let Ok(uri) = DirectoryUri::parse(&k, self.config.uri_policy) {
                changes.push(LearnedChange::Remove {
                    uri,
                    version: d.max_version,
                });
            }
        }
        log.max_version = log.max_version.max(d.max_version);
        let origin = log.id.clone();
        self.durable.touch(o);
        let total = st.changed + changes.len() as u64;
        self.stats.records_repaired += total;
        self.apply_to_sink(origin.clone(), changes);
        if total > 0 {
            self.events.push_back(Event::Repaired {
                origin,
                records: total,
            });
        }
    }

    pub(super) fn advertise_inner<I>(&mut self, now: Instant, records: I) -> super::AdvertiseReport
    where
        I: IntoIterator<Item = (DirectoryUri, RouteString)>,
    {
        let desired: BTreeMap<Box<str>, RouteString> = records
            .into_iter()
            .map(|(u, r)| (u.into_boxed_str(), r))
            .collect();
        let mut report = super::AdvertiseReport::default();
        let mut changes: Vec<(Arc<str>, Option<Arc<str>>)> = Vec::new();
        for (uri, route) in &desired {
            let key = match self.store.origins[OWN].entries.get_key_value(&**uri) {
                Some((_, e)) if e.route.as_deref() == Some(route.as_str()) => {
                    report.unchanged += 1;
                    continue;
                }
                Some((k, e)) => {
                    if e.route.is_some() {
                        report.changed += 1;
                    } else {
                        report.added += 1;
                    }
                    k.clone()
                }
                None => {
                    report.added += 1;
                    Arc::from(&**uri)
                }
            };
            changes.push((key, Some(self.store.intern(route.as_str()))));
        }
        let mut gone: Vec<Arc<str>> = self.store.origins[OWN]
            .entries
            .iter()
            .filter(|(k, e)| e.route.is_some() && !desired.contains_key(&***k))
            .map(|(k, _)| k.clone())
            .collect();
        gone.sort();
        report.removed = gone.len();
        changes.extend(gone.into_iter().map(|k| (k, None)));
        for (key, route) in changes {
            let v = self.store.origins[OWN].max_version + 1;
            self.store.apply(now, OWN, &key, v, route.clone());
            self.durable.record(OWN, &key, route, v);
        }
        report
    }

    /// A peer holds our own records at versions above our counter: we lost our state.
    /// Moves the counter past them and re-stamps every own live record, so ours win.
    fn reseed(&mut self, now: Instant, floor: u64) {
        let log = &mut self.store.origins[OWN];
        log.max_version = log.max_version.max(floor);
        self.durable.touch(OWN);
        let mut live: Vec<(Arc<str>, Arc<str>)> = log
            .entries
            .iter()
            .filter_map(|(k, e)| Some((k.clone(), e.route.clone()?)))
            .collect();
        live.sort();
        for (k, route) in live {
            let v = self.store.origins[OWN].max_version + 1;
            self.store.apply(now, OWN, &k, v, Some(route.clone()));
            self.durable.record(OWN, &k, Some(route), v);
        }
        self.events.push_back(Event::Reseeded {
            version: self.store.origins[OWN].max_version,
        });
    }
}

/// The next batch by cursor: the records of one origin newer than what the link has sent,
/// origins taken in turn so that one large origin does not hold up another's pushes.
fn cursor_batch(
    store: &Store,
    me: Role,
    l: &mut Link,
    peer: &LinkPeer,
    config: &super::NodeConfig,
    own_limit: u64,
) -> Option<(Records, OriginIdx, u64)> {
    let n = store.origins.len();
    let start = l.next_origin % n.max(1);
    for k in 0..n {
        let o = (start + k) % n;
        let log = &store.origins[o];
        let cursor = l.cursors.get(&o).copied().unwrap_or(0);
        let limit = sendable(log.max_version, o, own_limit);
        if limit <= cursor || !relays(store, me, o, peer) {
            continue;
        }
        let mut routes = RouteTable::default();
        let mut records = Vec::new();
        let mut bytes = 0;
        let mut last = cursor;
        for (v, uri) in log.by_version.range(cursor + 1..=limit) {
            last = *v;
            let Some(e) = log.entries.get(uri) else {
                continue;
            };
            bytes += uri.len() + 16;
            records.push(Record {
                version: *v,
                uri: uri.to_string(),
                route: routes.index(e.route.as_ref()),
            });
            if records.len() >= config.batch_records || bytes >= config.batch_bytes {
                break;
            }
        }
        if records.is_empty() {
            // Only versions of collected tombstones were left: nothing to send.
            l.cursors.insert(o, limit);
            continue;
        }
        l.cursors.insert(o, last);
        l.next_origin = o + 1;
        let batch = Records {
            seq: 0,
            origin: log.id.to_string(),
            routes: routes.names,
            records,
            repair: false,
        };
        return Some((batch, o, last));
    }
    None
}

/// The next batch of the front repair job, and its `RepairDone` once the job is finished.
fn repair_batch(
    store: &Store,
    l: &mut Link,
    max: usize,
) -> Option<(Option<Records>, Option<RepairDone>)> {
    let job = l.repairs_out.front_mut()?;
    let Some(log) = store.origins.get(job.origin) else {
        let done = RepairDone {
            origin: std::mem::take(&mut job.origin_name),
            buckets: Vec::new(),
            max_version: 0,
        };
        l.repairs_out.pop_front();
        return Some((None, Some(done)));
    };
    let mut routes = RouteTable::default();
    let mut records = Vec::new();
    while records.len() < max {
        let Some(k) = job.keys.pop_front() else {
            break;
        };
        if let Some(e) = log.entries.get(&k) {
            records.push(Record {
                version: e.version,
                uri: k.to_string(),
                route: routes.index(e.route.as_ref()),
            });
        }
    }
    let batch = (!records.is_empty()).then(|| Records {
        seq: 0,
        origin: log.id.to_string(),
        routes: routes.names,
        records,
        repair: true,
    });
    let done = job.keys.is_empty().then(|| RepairDone {
        origin: std::mem::take(&mut job.origin_name),
        buckets: std::mem::take(&mut job.buckets),
        max_version: job.max,
    });
    if done.is_some() {
        l.repairs_out.pop_front();
    }
    Some((batch, done))
}

fn caught_up(store: &Store, me: Role, l: &Link, peer: &LinkPeer, own_limit: u64) -> bool {
    l.repairs_out.is_empty()
        && store.origins.iter().enumerate().all(|(o, log)| {
            !relays(store, me, o, peer)
                || l.cursors.get(&o).copied().unwrap_or(0)
                    >= sendable(log.max_version, o, own_limit)
        })
}

/// The highest version of origin `o` that may be sent: our own records only once on disk.
fn sendable(max_version: u64, o: OriginIdx, own_limit: u64) -> u64 {
    if o == OWN {
        max_version.min(own_limit)
    } else {
        max_version
    }
}

/// The route strings of one batch, each sent once.
#[derive(Default)]
struct RouteTable {
    names: Vec<String>,
    index: HashMap<usize, u32>,
}

impl RouteTable {
    /// The record's route field: index + 1, or 0 for a tombstone.
    fn index(&mut self, route: Option<&Arc<str>>) -> u32 {
        let Some(r) = route else {
            return 0;
        };
        // Route strings are interned, so the pointer identifies the string.
        let key = Arc::as_ptr(r) as *const u8 as usize;
        *self.index.entry(key).or_insert_with(|| {
            self.names.push(r.to_string());
            self.names.len() as u32
        })
    }
}
