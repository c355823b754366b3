//! Where learned records go: the dial plan's learned table, reached through [`LearnedSink`].
//!
//! The replication node applies every accepted change of another cluster's records through
//! this trait, one batch per origin, in version order. The table applies the learned cap and
//! the duplicate policy and reports what it did; the node turns the report into events and
//! counters. The batch and report types are the dial plan's own, and the dial plan's
//! [`LearnedTable`](dialplan::LearnedTable) is a sink as it is.

use std::collections::HashMap;
use std::sync::Mutex;

use dialplan::{ClusterId, DirectoryUri, RouteString};

pub use dialplan::{ApplyReport, LearnedBatch, LearnedChange};

/// The learned table as the replication node sees it.
///
/// `apply` is called with the node's lock held, so it must not block on I/O: the dial plan's
/// table is an in-memory map.
pub trait LearnedSink: Send + Sync {
    /// Applies one origin's changes.
    fn apply(&self, batch: LearnedBatch) -> ApplyReport;
}

impl LearnedSink for dialplan::LearnedTable {
    fn apply(&self, batch: LearnedBatch) -> ApplyReport {
        // The inherent method: it takes precedence over this trait method.
        Self::apply(self, batch)
    }
}

/// A simple in-memory learned table: a map with a cap and "first learned wins".
///
/// Used by tests and benchmarks, and usable by a daemon without a dial plan table.
#[derive(Debug, Default)]
pub struct MemorySink {
    cap: Option<usize>,
    inner: Mutex<HashMap<DirectoryUri, (ClusterId, RouteString, u64), foldhash::fast::RandomState>>,
}

impl MemorySink {
    /// An empty table without a cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table that refuses new URIs beyond `cap`.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            cap: Some(cap),
            ..Self::default()
        }
    }

    /// The route string and origin of a URI.
    pub fn get(&self, uri: &DirectoryUri) -> Option<(ClusterId, RouteString)> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(uri).map(|(o, r, _)| (o.clone(), r.clone()))
    }

    /// Number of learned URIs.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as `(uri, origin, route string)`, sorted by URI.
    pub fn entries(&self) -> Vec<(String, String, String)> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map
            .iter()
            .map(|(u, (o, r, _))| (u.to_string(), o.to_string(), r.to_string()))
            .collect();
        v.sort();
        v
    }
}

impl LearnedSink for MemorySink {
    fn apply(&self, batch: LearnedBatch) -> ApplyReport {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = ApplyReport::default();
        for change in batch.changes {
            match change {
                LearnedChange::Upsert {
                    uri,
                    route_string,
                    version,
                } => {
                    let full = self.cap.is_some_and(|cap| map.len() >= cap);
                    match map.get_mut(&uri) {
                        Some((origin, _, _)) if *origin != batch.origin => {
                            report.new_conflicts += 1
                        }
                        Some((_, route, v)) if *v < version => {
                            *route = route_string;
                            *v = version;
                            report.upserted += 1;
                        }
                        Some(_) => report.stale += 1,
                        None if full => report.refused_cap += 1,
                        None => {
                            map.insert(uri, (batch.origin.clone(), route_string, version));
                            report.upserted += 1;
                        }
                    }
                }
                LearnedChange::Remove { uri, version } => {
                    let ours = map
                        .get(&uri)
                        .is_some_and(|(o, _, v)| *o == batch.origin && *v <= version);
                    if ours {
                        map.remove(&uri);
                        report.removed += 1;
                    } else {
                        report.stale += 1;
                    }
                }
            }
        }
        report
    }
}
