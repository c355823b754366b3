//! The learned-URI table: URIs replicated from other clusters, with their route string, origin
//! cluster and version.

mod key;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;
use key::{KeyRef, UriKey};

use crate::ids::{ClusterId, DirectoryUri, RouteString, UriLookupPolicy};
use crate::plan::ValueError;

/// Which claim wins when two clusters advertise the same URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DuplicatePolicy {
    /// The claim learned first keeps the URI (CUCM's behaviour).
    #[default]
    FirstLearned,
    /// The claim learned or updated last takes the URI.
    LastLearned,
    /// The claim of the cluster with the lowest cluster ID (byte order) wins.
    LowestClusterId,
}

impl DuplicatePolicy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstLearned => "first-learned",
            Self::LastLearned => "last-learned",
            Self::LowestClusterId => "lowest-cluster-id",
        }
    }
}

impl FromStr for DuplicatePolicy {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "first-learned" => Ok(Self::FirstLearned),
            "last-learned" => Ok(Self::LastLearned),
            "lowest-cluster-id" => Ok(Self::LowestClusterId),
            other => Err(ValueError::Unknown {
                what: "duplicate policy",
                value: other.to_owned(),
                expected: "first-learned, last-learned or lowest-cluster-id",
            }),
        }
    }
}

impl fmt::Display for DuplicatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change replicated from an origin cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnedChange {
    /// The origin advertises `uri` with `route_string`.
    Upsert {
        /// The URI.
        uri: DirectoryUri,
        /// The route string calls to it are routed on.
        route_string: RouteString,
        /// The origin's sequence number for this change.
        version: u64,
    },
    /// The origin withdraws `uri`.
    Remove {
        /// The URI.
        uri: DirectoryUri,
        /// The origin's sequence number for this change.
        version: u64,
    },
}

/// Changes from one origin cluster, applied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedBatch {
    /// The cluster that owns these changes.
    pub origin: ClusterId,
    /// The changes, in order.
    pub changes: Vec<LearnedChange>,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Claims added or updated.
    pub upserted: usize,
    /// Claims removed.
    pub removed: usize,
    /// Changes ignored because the table already held that version or a newer one.
    pub stale: usize,
    /// New URIs refused because the table was at its cap.
    pub refused_cap: usize,
    /// URIs that this batch made claimed by more than one cluster.
    pub new_conflicts: usize,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} upserted, {} removed, {} stale, {} refused (cap reached), {} new conflicts",
            self.upserted, self.removed, self.stale, self.refused_cap, self.new_conflicts
        )
    }
}

/// A learned URI as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnedEntry {
    /// The URI.
    pub uri: DirectoryUri,
    /// Its route string.
    pub route_string: RouteString,
    /// The cluster that advertised it.
    pub origin: ClusterId,
    /// The origin's version of it.
    pub version: u64,
}

/// A URI that more than one cluster advertises.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// The URI.
    pub uri: DirectoryUri,
    /// The cluster whose claim the table routes on.
    pub winner: ClusterId,
    /// The other claimants, in the order they were learned.
    pub others: Vec<ClusterId>,
}

// === LearnedTable ===

/// The learned-URI table, read by the SIP proxy on every call and written by ILS.
///
/// Shape: a [`papaya`] hash map from the canonical URI text to a 16-byte claim (origin and
/// route string as `u32` indexes into interned lists, and the version). The key holds URIs of
/// up to 46 bytes inline and longer ones as a `Box<str>`, so a typical entry is one 64-byte
/// allocation and a lookup chases one pointer fewer. We chose papaya
/// after DEPENDENCIES.md §3: reads are lock-free and never wait on the writer (dashmap starved
/// its writer under read load, full-copy snapshots cost a table per batch), it used the least
/// memory of the maps measured, and its incremental resize spreads a table copy over many
/// writes, so no read stalls behind a resize either. Readers see a batch's changes one at a
/// time, which ILS tolerates: every change is per URI and carries its version.
///
/// Writes go through [`LearnedTable::apply`], serialised by a mutex that readers never touch.
/// The mutex also guards what only the writer and the operators' views need: the intern maps
/// and, for the rare URI claimed by several clusters, every claim in learned order, so that
/// removing the winner promotes the next claimant.
pub struct LearnedTable {
    map: papaya::HashMap<UriKey, Claim, RandomState>,
    names: ArcSwap<Names>,
    writer: Mutex<Writer>,
    len: AtomicUsize,
    refused: AtomicU64,
    cap: usize,
    policy: DuplicatePolicy,
    lookup: UriLookupPolicy,
}

/// One cluster's claim on a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    origin: u32,
    route: u32,
    version: u64,
}

/// Interned cluster IDs and route strings, indexed by the `u32`s in claims. Append-only: the
/// writer publishes a new list before inserting any claim that uses a new index.
#[derive(Debug, Default)]
struct Names {
    clusters: Vec<ClusterId>,
    routes: Vec<RouteString>,
}

#[derive(Debug, Default)]
struct Writer {
    clusters: HashMap<ClusterId, u32>,
    routes: HashMap<RouteString, u32>,
    /// Every claim, in learned order, of each URI claimed by two or more clusters.
    contested: HashMap<Box<str>, Vec<Claim>, RandomState>,
}

impl LearnedTable {
    /// An empty table that holds at most `cap` URIs.
    pub fn new(cap: usize, policy: DuplicatePolicy, lookup: UriLookupPolicy) -> Self {
        Self {
            map: papaya::HashMap::builder()
                .hasher(RandomState::default())
                .build(),
            names: ArcSwap::from_pointee(Names::default()),
            writer: Mutex::new(Writer::default()),
            len: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            cap,
            policy,
            lookup,
        }
    }

    /// Applies one origin's batch. Idempotent: a change whose version is not newer than the
    /// origin's claim is stale. A remove withdraws only the origin's own claim; if another
    /// cluster also claims the URI, the next claimant (per the duplicate policy) takes over.
    pub fn apply(&self, batch: LearnedBatch) -> ApplyReport {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = ApplyReport::default();
        let origin = self.intern_cluster(&mut writer, &batch.origin);
        let guard = self.map.guard();
        let mut last_route: Option<(RouteString, u32)> = None;
        for change in batch.changes {
            match change {
                LearnedChange::Upsert {
                    uri,
                    route_string,
                    version,
                } => {
                    let route = match &last_route {
                        Some((r, id)) if *r == route_string => *id,
                        _ => {
                            let id = self.intern_route(&mut writer, &route_string);
                            last_route = Some((route_string, id));
                            id
                        }
                    };
                    let claim = Claim {
                        origin,
                        route,
                        version,
                    };
                    self.upsert(&mut writer, self.owned_key(uri), claim, &guard, &mut report);
                }
                LearnedChange::Remove { uri, version } => {
                    let key = self.key(&uri);
                    self.remove(&mut writer, &key, origin, version, &guard, &mut report);
                }
            }
        }
        report
    }

    /// The winning claim on `uri`, if any cluster advertises it.
    pub fn get(&self, uri: &DirectoryUri) -> Option<LearnedEntry> {
        let key = self.key(uri);
        let claim = *self.map.pin().get(&KeyRef(&key))?;
        let names = self.names.load();
        Some(LearnedEntry {
            uri: uri.clone(),
            route_string: names.routes.get(claim.route as usize)?.clone(),
            origin: names.clusters.get(claim.origin as usize)?.clone(),
            version: claim.version,
        })
    }

    /// Whether any cluster advertises `uri` (a lookup that copies nothing out).
    pub fn contains(&self, uri: &DirectoryUri) -> bool {
        self.map.pin().contains_key(&KeyRef(&self.key(uri)))
    }

    /// Calls `f` with the route string and origin of `uri`'s winning claim, without copying
    /// them (the router's path).
    pub(crate) fn with_route<R>(
        &self,
        uri: &DirectoryUri,
        f: impl FnOnce(&RouteString, &ClusterId) -> R,
    ) -> Option<R> {
        let key = self.key(uri);
        let claim = *self.map.pin().get(&KeyRef(&key))?;
        let names = self.names.load();
        let route = names.routes.get(claim.route as usize)?;
        let origin = names.clusters.get(claim.origin as usize)?;
        Some(f(route, origin))
    }

    /// The number of URIs held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the table holds no URI.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most URIs the table holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether the table is full: further new URIs are refused until some are removed.
    pub fn cap_reached(&self) -> bool {
        self.len() >= self.cap
    }

    /// How many new URIs were refused because the table was full, since it was created.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The duplicate policy in force.
    pub fn duplicate_policy(&self) -> DuplicatePolicy {
        self.policy
    }

    /// Every URI with its winning claim, sorted by URI (the operators' view).
    pub fn entries(&self) -> Vec<LearnedEntry> {
        self.collect(|_| true)
    }

    /// Every URI `origin` claims, sorted by URI: those it wins and those it loses to another
    /// cluster's claim (listed in [`Self::conflicts`] too).
    pub fn entries_of(&self, origin: &ClusterId) -> Vec<LearnedEntry> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(&id) = writer.clusters.get(origin) else {
            return Vec::new();
        };
        let mut out = self.collect(|claim| claim.origin == id);
        let names = self.names.load();
        let map = self.map.pin();
        for (key, claims) in &writer.contested {
            let lost = claims.iter().filter(|c| {
                c.origin == id && map.get(&KeyRef(key)).is_some_and(|w| w.origin != id)
            });
            for claim in lost {
                if let Some(route) = names.routes.get(claim.route as usize) {
                    out.push(LearnedEntry {
                        uri: DirectoryUri::from_canonical(key),
                        route_string: route.clone(),
                        origin: origin.clone(),
                        version: claim.version,
                    });
                }
            }
        }
        out.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        out
    }

    /// Every URI claimed by more than one cluster, sorted by URI.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<Conflict> = writer
            .contested
            .iter()
            .filter_map(|(key, claims)| self.conflict_of(key, claims))
            .collect();
        out.sort_by(|a, b| a.uri.cmp(&b.uri));
        out
    }

    /// The conflict on `uri`, if more than one cluster claims it.
    pub fn conflict(&self, uri: &DirectoryUri) -> Option<Conflict> {
        let key = self.key(uri);
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let claims = writer.contested.get(&*key)?;
        self.conflict_of(&key, claims)
    }

    fn conflict_of(&self, key: &str, claims: &[Claim]) -> Option<Conflict> {
        let names = self.names.load();
        let winner = *self.map.pin().get(&KeyRef(key))?;
        let cluster = |c: &Claim| names.clusters.get(c.origin as usize).cloned();
        Some(Conflict {
            uri: DirectoryUri::from_canonical(key),
            winner: cluster(&winner)?,
            others: claims
                .iter()
                .filter(|c| c.origin != winner.origin)
                .filter_map(cluster)
                .collect(),
        })
    }

    fn collect(&self, keep: impl Fn(&Claim) -> bool) -> Vec<LearnedEntry> {
        let names = self.names.load();
        let map = self.map.pin();
        let mut out: Vec<LearnedEntry> = map
            .iter()
            .filter(|(_, claim)| keep(claim))
            .filter_map(|(key, claim)| {
                Some(LearnedEntry {
                    uri: DirectoryUri::from_canonical(key.as_str()),
                    route_string: names.routes.get(claim.route as usize)?.clone(),
                    origin: names.clusters.get(claim.origin as usize)?.clone(),
                    version: claim.version,
                })
            })
            .collect();
        out.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        out
    }

    fn upsert(
        &self,
        writer: &mut Writer,
        key: Box<str>,
        new: Claim,
        guard: &impl papaya::Guard,
        report: &mut ApplyReport,
    ) {
        let contested = &mut writer.contested;
        if let Some(claims) = contested.get_mut(&*key) {
            match claims.iter().position(|c| c.origin == new.origin) {
                Some(i) if claims[i].version >= new.version => {
                    report.stale += 1;
                    return;
                }
                Some(i) if self.policy == DuplicatePolicy::LastLearned => {
                    claims.remove(i);
                    claims.push(new);
                }
                Some(i) => claims[i] = new,
                None => claims.push(new),
            }
            let winner = self.winner(claims);
            self.map.insert(UriKey::new(&key), winner, guard);
            report.upserted += 1;
            return;
        }
        match self.map.get(&KeyRef(&key), guard).copied() {
            None => {
                if self.len() >= self.cap {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    report.refused_cap += 1;
                    return;
                }
                self.map.insert(UriKey::new(&key), new, guard);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            Some(current) if current.origin == new.origin => {
                if current.version >= new.version {
                    report.stale += 1;
                    return;
                }
                self.map.insert(UriKey::new(&key), new, guard);
            }
            Some(current) => {
                let claims = vec![current, new];
                let winner = self.winner(&claims);
                if winner != current {
                    self.map.insert(UriKey::new(&key), winner, guard);
                }
                contested.insert(key, claims);
                report.new_conflicts += 1;
            }
        }
        report.upserted += 1;
    }

    fn remove(
        &self,
        writer: &mut Writer,
        key: &str,
        origin: u32,
        version: u64,
        guard: &impl papaya::Guard,
        report: &mut ApplyReport,
    ) {
        let contested = &mut writer.contested;
        if let Some(claims) = contested.get_mut(key) {
            let Some(i) = claims
                .iter()
                .position(|c| c.origin == origin && c.version <= version)
            else {
                report.stale += 1;
                return;
            };
            claims.remove(i);
            let winner = self.winner(claims);
            if claims.len() < 2 {
                contested.remove(key);
            }
            if self.map.get(&KeyRef(key), guard) != Some(&winner) {
                self.map.insert(UriKey::new(key), winner, guard);
            }
            report.removed += 1;
            return;
        }
        match self.map.get(&KeyRef(key), guard) {
            Some(c) if c.origin == origin && c.version <= version => {
                self.map.remove(&KeyRef(key), guard);
                self.len.fetch_sub(1, Ordering::Relaxed);
                report.removed += 1;
            }
            _ => report.stale += 1,
        }
    }

    /// The claim the policy routes on. `claims` is never empty: a contested URI has at least
    /// one claim left after any removal.
    fn winner(&self, claims: &[Claim]) -> Claim {
        let first = claims[0];
        match self.policy {
            DuplicatePolicy::FirstLearned => first,
            DuplicatePolicy::LastLearned => claims.last().copied().unwrap_or(first),
            DuplicatePolicy::LowestClusterId => {
                let names = self.names.load();
                claims
                    .iter()
                    .copied()
                    .min_by(|a, b| {
                        names
                            .clusters
                            .get(a.origin as usize)
                            .cmp(&names.clusters.get(b.origin as usize))
                    })
                    .unwrap_or(first)
            }
        }
    }

    fn intern_cluster(&self, writer: &mut Writer, id: &ClusterId) -> u32 {
        if let Some(&n) = writer.clusters.get(id) {
            return n;
        }
        let current = self.names.load();
        let n = u32::try_from(current.clusters.len()).unwrap_or(u32::MAX);
        let mut clusters = current.clusters.clone();
        clusters.push(id.clone());
        self.names.store(Arc::new(Names {
            clusters,
            routes: current.routes.clone(),
        }));
        writer.clusters.insert(id.clone(), n);
        n
    }

    fn intern_route(&self, writer: &mut Writer, route: &RouteString) -> u32 {
        if let Some(&n) = writer.routes.get(route) {
            return n;
        }
        let current = self.names.load();
        let n = u32::try_from(current.routes.len()).unwrap_or(u32::MAX);
        let mut routes = current.routes.clone();
        routes.push(route.clone());
        self.names.store(Arc::new(Names {
            clusters: current.clusters.clone(),
            routes,
        }));
        writer.routes.insert(route.clone(), n);
        n
    }

    /// The table key of `uri`: its canonical text under the table's lookup policy.
    fn key<'a>(&self, uri: &'a DirectoryUri) -> Cow<'a, str> {
        if self.lookup == UriLookupPolicy::CaseInsensitive
            && uri.user().bytes().any(|b| b.is_ascii_uppercase())
            && let Ok(folded) = DirectoryUri::parse(uri.as_str(), self.lookup)
        {
            return Cow::Owned(folded.into_boxed_str().into());
        }
        Cow::Borrowed(uri.as_str())
    }

    fn owned_key(&self, uri: DirectoryUri) -> Box<str> {
        match self.key(&uri) {
            Cow::Owned(folded) => folded.into(),
            Cow::Borrowed(_) => uri.into_boxed_str(),
        }
    }
}

impl fmt::Debug for LearnedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnedTable")
            .field("len", &self.len())
            .field("cap", &self.cap)
            .field("policy", &self.policy)
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
