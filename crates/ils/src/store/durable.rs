//! The replication node's state on disk: writing its [`DurableBatch`]es (one transaction
//! each) and restoring it at start.

use std::time::{Instant, SystemTime};

use dialplan::ClusterId;
use rusqlite::{OptionalExtension, params};

use super::{LearnedRecord, Store, StoreError, sql_err, sql_version, unix};
use crate::proto::{DurableBatch, Node, PeerRow, PeerState, RecordChange};

/// What [`Store::restore`] put back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Live learned records (now in the learned table, within its cap).
    pub learned: u64,
    /// Learned tombstones.
    pub tombstones: u64,
    /// Rows that no longer parse (skipped).
    pub invalid: u64,
    /// Origin clusters with a position.
    pub origins: u64,
    /// Own records (tombstones included).
    pub own: u64,
    /// Our version counter.
    pub own_version: u64,
    /// Rows of the peer vector.
    pub peers: u64,
    /// Certificates pinned for peers (DER), for the trust store.
    pub pinned_certs: Vec<Vec<u8>>,
}

/// Records handed to the node at a time while restoring.
const RESTORE_CHUNK: usize = 10_000;

impl Store {
    /// Writes one batch of the node's changes in one durable transaction.
    pub fn write_durable(&mut self, b: &DurableBatch) -> Result<(), StoreError> {
        let now = unix(SystemTime::now());
        let mut rows: Vec<(&str, &RecordChange)> = Vec::with_capacity(b.records());
        for o in &b.origins {
            sql_version(o.position)?;
            for r in &o.changed {
                sql_version(r.version)?;
                rows.push((o.origin.as_str(), r));
            }
        }
        for r in &b.own {
            sql_version(r.version)?;
        }
        // Key order keeps the B-tree writes local.
        rows.sort_unstable_by(|a, b| (a.0, &a.1.uri).cmp(&(b.0, &b.1.uri)));
        let path = &self.path;
        let err = |context| sql_err(path, context);
        let tx = self.conn.transaction().map_err(err("starting a batch"))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO learned (origin, uri, route, version, tombstone, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (origin, uri) DO UPDATE SET
                        route = excluded.route, version = excluded.version,
                        tombstone = excluded.tombstone, updated_at = excluded.updated_at
                     WHERE excluded.version > learned.version",
                )
                .map_err(err("preparing the record upsert"))?;
            for (origin, r) in rows {
                upsert
                    .execute(params![
                        origin,
                        r.uri,
                        r.route.as_deref().unwrap_or(""),
                        r.version as i64,
                        r.route.is_none(),
                        now
                    ])
                    .map_err(err("writing a learned record"))?;
            }
            let mut forget = tx
                .prepare_cached("DELETE FROM learned WHERE origin = ?1 AND uri = ?2")
                .map_err(err("preparing the record removal"))?;
            let mut position = tx
                .prepare_cached(
                    "INSERT INTO positions (origin, version, updated_at, gc_floor)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (origin) DO UPDATE SET
                        version = max(positions.version, excluded.version),
                        updated_at = excluded.updated_at,
                        gc_floor = max(positions.gc_floor, excluded.gc_floor)",
                )
                .map_err(err("preparing the position update"))?;
            for o in &b.origins {
                for uri in &o.forgotten {
                    forget
                        .execute(params![o.origin.as_str(), uri])
                        .map_err(err("removing a learned record"))?;
                }
                position
                    .execute(params![
                        o.origin.as_str(),
                        o.position as i64,
                        now,
                        sql_version(o.gc_floor)?
                    ])
                    .map_err(err("writing a position"))?;
            }
            let mut own = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO own_records (uri, route, version, tombstone, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err("preparing the own-record upsert"))?;
            for r in &b.own {
                own.execute(params![
                    r.uri,
                    r.route.as_deref().unwrap_or(""),
                    r.version as i64,
                    r.route.is_none(),
                    now
                ])
                .map_err(err("writing an own record"))?;
            }
            let mut own_forget = tx
                .prepare_cached("DELETE FROM own_records WHERE uri = ?1")
                .map_err(err("preparing the own-record removal"))?;
            for uri in &b.own_forgotten {
                own_forget
                    .execute([uri])
                    .map_err(err("removing an own record"))?;
            }
            let mut meta = tx
                .prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = max(meta.value, excluded.value)",
                )
                .map_err(err("preparing the counter update"))?;
            meta.execute(params!["own_version", sql_version(b.own_version)?])
                .map_err(err("raising the own version"))?;
            meta.execute(params!["own_gc_floor", sql_version(b.own_gc_floor)?])
                .map_err(err("raising the own tombstone floor"))?;
            let mut peer = tx
                .prepare_cached(
                    "INSERT INTO peers
                     (cluster_id, name, role, addresses, route_strings, last_sync, state, pinned_cert)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (cluster_id) DO UPDATE SET
                        name = excluded.name, role = excluded.role,
                        addresses = excluded.addresses, route_strings = excluded.route_strings,
                        last_sync = COALESCE(excluded.last_sync, peers.last_sync),
                        state = excluded.state,
                        pinned_cert = COALESCE(excluded.pinned_cert, peers.pinned_cert)",
                )
                .map_err(err("preparing the peer upsert"))?;
            for p in &b.peers {
                let synced = (p.state == PeerState::Up).then_some(now);
                peer.execute(params![
                    p.cluster_id.as_str(),
                    p.name,
                    p.role.as_str(),
                    p.addresses.join(","),
                    p.route_strings.join(","),
                    synced,
                    p.state.as_str(),
                    p.pinned_cert,
                ])
                .map_err(err("writing a peer"))?;
            }
        }
        tx.commit().map_err(err("committing a batch"))?;
        Ok(())
    }

    /// Restores the node from disk: own records and counter, positions, learned records (the
    /// live ones also into the learned table), the peer vector. Call before any link opens.
    pub fn restore(&self, node: &mut Node, now: Instant) -> Result<RestoreReport, StoreError> {
        let mut report = RestoreReport::default();
        let meta = |key: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map(|v| v.unwrap_or(0).max(0) as u64)
                .map_err(self.err("reading a counter"))
        };
        let own = self.load_own_records()?;
        report.own = own.len() as u64;
        report.own_version = self.own_version()?;
        node.restore_own(
            now,
            own.into_iter().map(|r| RecordChange {
                route: (!r.tombstone).then_some(r.route),
                uri: r.uri,
                version: r.version,
            }),
            report.own_version,
            meta("own_gc_floor")?,
        );
        let mut stmt = self
            .conn
            .prepare_cached("SELECT origin, version, gc_floor FROM positions")
            .map_err(self.err("preparing the positions query"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.err("reading positions"))?;
        for row in rows {
            let (origin, version, floor) = row.map_err(self.err("reading positions"))?;
            let id = self.cluster_id("positions", &origin)?;
            node.restore_position(&id, version.max(0) as u64, floor.max(0) as u64);
            report.origins += 1;
        }
        let mut chunk: Vec<RecordChange> = Vec::with_capacity(RESTORE_CHUNK);
        let mut current: Option<ClusterId> = None;
        let flush = |origin: &Option<ClusterId>, chunk: &mut Vec<RecordChange>, n: &mut Node| {
            if let Some(o) = origin {
                n.restore_learned(now, o, chunk.drain(..)) as u64
            } else {
                0
            }
        };
        self.for_each_learned(|origin, r: LearnedRecord| {
            if current.as_ref().is_none_or(|c| c.as_str() != origin) {
                report.invalid += flush(&current, &mut chunk, node);
                current = Some(ClusterId::new(origin).map_err(|e| e.to_string())?);
            }
            if r.tombstone {
                report.tombstones += 1;
            } else {
                report.learned += 1;
            }
            chunk.push(RecordChange {
                route: (!r.tombstone).then_some(r.route),
                uri: r.uri,
                version: r.version,
            });
            if chunk.len() >= RESTORE_CHUNK {
                report.invalid += flush(&current, &mut chunk, node);
            }
            Ok(())
        })?;
        report.invalid += flush(&current, &mut chunk, node);
        for p in self.load_peers()? {
            report.peers += 1;
            if let Some(cert) = &p.pinned_cert {
                report.pinned_certs.push(cert.clone());
            }
            node.restore_peer(PeerRow {
                cluster_id: p.cluster_id,
                name: p.name,
                role: p.role,
                addresses: p.addresses,
                route_strings: p.route_strings.iter().map(|r| r.to_string()).collect(),
                state: PeerState::Down,
                pinned_cert: p.pinned_cert,
            });
        }
        Ok(report)
    }
}
