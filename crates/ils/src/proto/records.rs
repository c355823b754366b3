//! The replicated records, by origin: each origin's log of its URIs with their latest
//! versions, tombstones included, indexed by URI and by version, with an incrementally kept
//! digest.
//!
//! Versions are assigned by the origin, one counter per origin, so a record `(origin, uri,
//! version)` means the same thing on every node and applying it twice is harmless: a change
//! is applied only if its version is newer than what we hold for that URI.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use foldhash::fast::RandomState;
use std::sync::Arc;
use std::time::Instant;

use dialplan::ClusterId;

/// Index of an origin in [`Store::origins`]; 0 is this cluster.
pub(crate) type OriginIdx = usize;
/// This cluster's own origin index.
pub(crate) const SELF: OriginIdx = 0;
/// Buckets of the anti-entropy digest (by URI hash).
pub(crate) const BUCKETS: usize = 64;

/// The latest change of one URI.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) version: u64,
    /// The route string; `None` for a tombstone.
    pub(crate) route: Option<Arc<str>>,
}

/// How an origin's records reach us, which decides where a hub relays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Our own records.
    Local,
    /// From a spoke link (the origin is, or was lately, one of our spokes).
    Spoke,
    /// From a hub link.
    Hub,
    /// Not yet heard from.
    Unknown,
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Older than or equal to what we hold: ignored.
    Stale,
    /// A live record was added or changed.
    Upserted,
    /// A live record became a tombstone.
    Removed,
    /// A tombstone for a URI we did not hold live.
    Tombstone,
}

/// One origin's records.
#[derive(Debug)]
pub(crate) struct OriginLog {
    pub(crate) id: ClusterId,
    pub(crate) entries: HashMap<Arc<str>, Entry, RandomState>,
    pub(crate) by_version: BTreeMap<u64, Arc<str>>,
    /// Highest version seen from the origin (kept after tombstones are collected).
    pub(crate) max_version: u64,
    pub(crate) live: u64,
    pub(crate) hash: u64,
    pub(crate) buckets: [u64; BUCKETS],
    /// Highest version of a collected tombstone: a peer behind it cannot get a delta.
    pub(crate) gc_floor: u64,
    pub(crate) via: Via,
}

impl OriginLog {
    fn new(id: ClusterId, via: Via) -> Self {
        Self {
            id,
            entries: HashMap::default(),
            by_version: BTreeMap::new(),
            max_version: 0,
            live: 0,
            hash: 0,
            buckets: [0; BUCKETS],
            gc_floor: 0,
            via,
        }
    }

    /// Applies a change if it is newer than what we hold for the URI.
    pub(crate) fn apply(
        &mut self,
        uri: &Arc<str>,
        version: u64,
        route: Option<Arc<str>>,
    ) -> Applied {
        let was_live = match self.entries.get(uri) {
            Some(e) if e.version >= version => return Applied::Stale,
            Some(e) => {
                self.by_version.remove(&e.version);
                if e.route.is_some() {
                    self.unhash(uri, e.version);
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        let live = route.is_some();
        if live {
            self.rehash(uri, version);
        }
        self.max_version = self.max_version.max(version);
        self.by_version.insert(version, uri.clone());
        self.entries.insert(uri.clone(), Entry { version, route });
        match (was_live, live) {
            (_, true) => Applied::Upserted,
            (true, false) => Applied::Removed,
            (false, false) => Applied::Tombstone,
        }
    }

    /// Drops a URI's entry (live or tombstone) altogether.
    pub(crate) fn forget(&mut self, uri: &str) -> Option<Entry> {
        let e = self.entries.remove(uri)?;
        self.by_version.remove(&e.version);
        if e.route.is_some() {
            self.unhash(uri, e.version);
        }
        Some(e)
    }

    /// The digest of the live records: `(max_version, count, hash)`.
    pub(crate) fn digest(&self) -> (u64, u64, u64) {
        (self.max_version, self.live, self.hash)
    }

    fn rehash(&mut self, uri: &str, version: u64) {
        let (h, b) = record_hash(uri, version);
        self.hash ^= h;
        self.buckets[b] ^= h;
        self.live += 1;
    }

    fn unhash(&mut self, uri: &str, version: u64) {
        let (h, b) = record_hash(uri, version);
        self.hash ^= h;
        self.buckets[b] ^= h;
        self.live -= 1;
    }
}

/// Every origin's records, ours first.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) origins: Vec<OriginLog>,
    index: HashMap<ClusterId, OriginIdx>,
    routes: HashSet<Arc<str>>,
    /// Tombstones in the order they were made, for collection.
    tombstones: VecDeque<(Instant, OriginIdx, Arc<str>, u64)>,
}

impl Store {
    pub(crate) fn new(own: ClusterId) -> Self {
        let mut index = HashMap::new();
        index.insert(own.clone(), SELF);
        Self {
            origins: vec![OriginLog::new(own, Via::Local)],
            index,
            routes: HashSet::new(),
            tombstones: VecDeque::new(),
        }
    }

    /// The index of an origin, adding it if new.
    pub(crate) fn origin(&mut self, id: &ClusterId) -> OriginIdx {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.origins.len();
        self.origins.push(OriginLog::new(id.clone(), Via::Unknown));
        self.index.insert(id.clone(), i);
        i
    }

    /// The index of a known origin.
    pub(crate) fn find(&self, id: &str) -> Option<OriginIdx> {
        // ClusterId borrows as its text through Box<str>; build a key only on the rare miss.
        ClusterId::new(id)
            .ok()
            .and_then(|c| self.index.get(&c).copied())
    }

    /// One shared copy of a route string.
    pub(crate) fn intern(&mut self, route: &str) -> Arc<str> {
        if let Some(r) = self.routes.get(route) {
            return r.clone();
        }
        let r: Arc<str> = Arc::from(route);
        self.routes.insert(r.clone());
        r
    }

    /// Applies a change and schedules a new tombstone for collection.
    pub(crate) fn apply(
        &mut self,
        now: Instant,
        origin: OriginIdx,
        uri: &Arc<str>,
        version: u64,
        route: Option<Arc<str>>,
    ) -> Applied {
        let tomb = route.is_none();
        let applied = self.origins[origin].apply(uri, version, route);
        if tomb && applied != Applied::Stale {
            self.tombstones
                .push_back((now, origin, uri.clone(), version));
        }
        applied
    }

    /// Records held from other clusters (tombstones included).
    pub(crate) fn learned_len(&self) -> usize {
        self.origins[1..].iter().map(|o| o.entries.len()).sum()
    }

    /// Collects tombstones made before `before`; returns how many went.
    ///
    /// Safe at any age: a peer that missed the removal and can no longer get it as a delta
    /// (its position is below the origin's `gc_floor`) gets a full repair of that origin,
    /// whose end removes whatever was not sent.
    pub(crate) fn collect_tombstones(&mut self, before: Instant) -> Vec<(OriginIdx, Arc<str>)> {
        let mut gone = Vec::new();
        while let Some((at, _, _, _)) = self.tombstones.front() {
            if *at > before {
                break;
            }
            let Some((_, origin, uri, version)) = self.tombstones.pop_front() else {
                break;
            };
            let log = &mut self.origins[origin];
            if log
                .entries
                .get(&uri)
                .is_some_and(|e| e.version == version && e.route.is_none())
            {
                log.forget(&uri);
                log.gc_floor = log.gc_floor.max(version);
                gone.push((origin, uri));
            }
        }
        gone
    }

    /// When the oldest tombstone was made.
    pub(crate) fn oldest_tombstone(&self) -> Option<Instant> {
        self.tombstones.front().map(|t| t.0)
    }
}

/// The digest contribution of one live record, and its bucket.
///
/// FNV-1a over the URI, mixed with the version by SplitMix64's finaliser. The hash must be
/// the same on every node and every build, so no seeded or library hasher is used.
pub(crate) fn record_hash(uri: &str, version: u64) -> (u64, usize) {
    let u = fnv1a(uri);
    (mix(u ^ mix(version)), bucket_of_hash(u))
}

/// The digest bucket of a URI.
pub(crate) fn bucket(uri: &str) -> usize {
    bucket_of_hash(fnv1a(uri))
}

fn bucket_of_hash(h: u64) -> usize {
    // The top 6 bits: BUCKETS is 64.
    (mix(h) >> 58) as usize
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_independent_and_ignores_tombstones() {
        let now = Instant::now();
        let id = ClusterId::new("A").expect("valid");
        let mut a = Store::new(id.clone());
        let mut b = Store::new(id);
        let r = a.intern("a.route");
        let (x, y, z): (Arc<str>, Arc<str>, Arc<str>) = ("x@a".into(), "y@a".into(), "z@a".into());
        a.apply(now, SELF, &x, 1, Some(r.clone()));
        a.apply(now, SELF, &y, 2, Some(r.clone()));
        a.apply(now, SELF, &z, 3, Some(r.clone()));
        a.apply(now, SELF, &z, 4, None);
        b.apply(now, SELF, &y, 2, Some(r.clone()));
        b.apply(now, SELF, &x, 1, Some(r.clone()));
        assert_ne!(a.origins[0].digest(), b.origins[0].digest()); // max differs
        b.apply(now, SELF, &z, 4, None);
        assert_eq!(a.origins[0].digest(), b.origins[0].digest());
        assert_eq!(a.origins[0].buckets, b.origins[0].buckets);
        assert_eq!(a.origins[0].apply(&x, 1, Some(r)), Applied::Stale);
    }

    #[test]
    fn tombstones_are_collected_and_raise_the_floor() {
        let t0 = Instant::now();
        let mut s = Store::new(ClusterId::new("A").expect("valid"));
        let r = s.intern("a.route");
        let x: Arc<str> = "x@a".into();
        s.apply(t0, SELF, &x, 1, Some(r));
        s.apply(t0, SELF, &x, 2, None);
        assert_eq!(s.collect_tombstones(t0).len(), 1);
        assert!(s.origins[0].entries.is_empty());
        assert!(s.origins[0].by_version.is_empty());
        assert_eq!(s.origins[0].gc_floor, 2);
        assert_eq!(s.origins[0].max_version, 2);
    }
}
