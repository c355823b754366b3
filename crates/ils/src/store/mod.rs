//! The ILS store: learned records, replication positions, the peer vector and this cluster's own
//! records, in one SQLite database.
//!
//! After a restart the edge fills its route table from [`Store::load_learned`] and resumes
//! replication from [`Store::positions`], so it routes learned URIs at once and asks its peers
//! only for what changed.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous = FULL`: every commit is flushed to disk
//! (`fsync` of the WAL) before the call returns. A method that returned `Ok` is therefore
//! durable across a process crash *and* a power loss or kernel crash, so a position
//! acknowledged to a peer is never lost and the peer need not resend. (`synchronous = NORMAL`
//! would survive a process crash but could roll back the last commits on power loss.) The cost
//! is one flush per transaction, and every write method is one transaction, so a batch of
//! thousands of records costs a single flush.
//!
//! A batch ([`Store::apply_batch`]) is applied with its new position in one transaction: after a
//! crash either both are there or neither is. Each commit rewrites every page it touches, and
//! records arriving in version order land on pages all over the URI-keyed table, so a driver
//! receiving a stream of small batches (a full sync) should group what has arrived into one
//! [`Store::apply_batches`] call and acknowledge it all once that returns.
//!
//! # Schema
//!
//! Plain column types, so operators can inspect the file with the `sqlite3` tool, for example
//! `sqlite3 ils.db "SELECT uri, route, origin FROM learned WHERE tombstone = 0 LIMIT 20"`.
//! Times are seconds since the Unix epoch (`datetime(updated_at, 'unixepoch')` shows them).
//!
//! | table | columns | meaning |
//! |---|---|---|
//! | `learned` | `origin` TEXT, `uri` TEXT, `route` TEXT, `version` INTEGER, `tombstone` INTEGER (0/1), `updated_at` INTEGER; key (`origin`, `uri`) | URIs learned from other clusters: origin cluster ID, canonical directory URI, route string, the origin's version of the record; a tombstone is a deletion kept until it is collected |
//! | `positions` | `origin` TEXT key, `version` INTEGER, `updated_at` INTEGER, `gc_floor` INTEGER | per origin cluster, the highest version held: a reconnect asks for what follows; and the highest version of a collected tombstone (a peer behind it gets a full repair) |
//! | `peers` | `cluster_id` TEXT key, `name` TEXT, `role` TEXT (`hub`/`spoke`/`standalone`), `addresses` TEXT (comma-separated `host:port`), `route_strings` TEXT (comma-separated), `last_sync` INTEGER or NULL, `state` TEXT, `pinned_cert` BLOB (DER) or NULL | the peer vector |
//! | `own_records` | `uri` TEXT key, `route` TEXT, `version` INTEGER, `tombstone` INTEGER, `updated_at` INTEGER | the URIs this cluster advertises, with the version each was last changed at |
//! | `meta` | `key` TEXT, `value` INTEGER | `own_version`: the highest version this cluster ever issued; it never goes backwards, even when tombstones are collected; `own_gc_floor`: the highest version of a collected own tombstone |
//! | `schema_migrations` | `version` INTEGER, `description` TEXT, `applied_at` INTEGER | the schema steps applied (also in `PRAGMA user_version`) |

mod durable;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialplan::{ClusterId, Role, RouteString};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use durable::RestoreReport;
use schema::MIGRATIONS;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An SQLite call failed.
    #[error("ILS store {path}: {context}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer version of ils-edge.
    #[error(
        "ILS store {path}: schema version {found} is newer than this edge supports ({supported}); upgrade ils-edge or move the file away"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// A row holds a value the store cannot turn back into its type.
    #[error("ILS store {path}: table {table}, row {key:?}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A version number above `i64::MAX`, which SQLite cannot hold.
    #[error("version {0} is out of range for the store (at most 2^63 - 1)")]
    VersionOutOfRange(u64),
}

/// A record learned from another cluster, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRecord {
    /// The canonical directory URI (`user@host`).
    pub uri: String,
    /// The route string the origin advertises for it.
    pub route: String,
    /// The origin's version of this record.
    pub version: u64,
    /// A deletion, kept until collected.
    pub tombstone: bool,
}

/// One origin's records and the position they bring it to, for [`Store::apply_batches`].
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The origin cluster.
    pub origin: &'a ClusterId,
    /// Its records.
    pub records: &'a [LearnedRecord],
    /// The origin's highest contiguous version once these are applied.
    pub new_position: u64,
}

/// The learned records of one origin cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRecords {
    /// The origin cluster.
    pub origin: ClusterId,
    /// Its records, ordered by URI.
    pub records: Vec<LearnedRecord>,
}

/// A URI this cluster advertises, with the version it was last changed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnRecord {
    /// The canonical directory URI.
    pub uri: String,
    /// The route string advertised for it.
    pub route: String,
    /// The version at which it last changed.
    pub version: u64,
    /// Withdrawn, kept until collected.
    pub tombstone: bool,
}

/// One row of the peer vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer's cluster ID.
    pub cluster_id: ClusterId,
    /// The peer's cluster name (the name its certificate must carry).
    pub name: String,
    /// The peer's role.
    pub role: Role,
    /// Addresses (`host:port`) the peer is reached at.
    pub addresses: Vec<String>,
    /// The route strings the peer advertises.
    pub route_strings: Vec<RouteString>,
    /// When the last synchronisation with it completed.
    pub last_sync: Option<SystemTime>,
    /// The session's name for its state (for example `connected`).
    pub state: String,
    /// Its certificate (DER), pinned by the password bootstrap or the operator.
    pub pinned_cert: Option<Vec<u8>>,
}

/// Sizes of the store, for the operators' view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Learned records that are not tombstones.
    pub learned: u64,
    /// Learned tombstones not yet collected.
    pub learned_tombstones: u64,
    /// Own records that are not tombstones.
    pub own: u64,
    /// Rows in the peer vector.
    pub peers: u64,
}

/// The ILS database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// The newest schema version this build writes.
    pub const SCHEMA_VERSION: i64 = 2;

    /// Opens (or creates) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |context| sql_err(path, context);
        let mut conn = Connection::open(path).map_err(err("opening the database"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err("setting the busy timeout"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite {
                path: path.to_owned(),
                context: "switching to WAL mode",
                source: rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536;
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(err("setting pragmas"))?;
        migrate(&mut conn, path)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("reading the schema version"))
    }

    /// Applies a batch of `origin`'s records and advances its position to `new_position`, in
    /// one durable transaction. A record replaces the stored one only if its version is higher
    /// (a late duplicate changes nothing); the position never moves backwards. Returns how many
    /// records changed.
    pub fn apply_batch(
        &mut self,
        origin: &ClusterId,
        records: &[LearnedRecord],
        new_position: u64,
    ) -> Result<usize, StoreError> {
        self.apply_batches(&[Batch {
            origin,
            records,
            new_position,
        }])
    }

    /// Applies several batches (of one or more origins) in a single durable transaction: group
    /// commit. Each commit costs a flush and rewrites every page it touches, so a driver that
    /// receives many small batches quickly (a full sync) should apply what has arrived together
    /// and acknowledge all of it after this returns. Returns how many records changed.
    pub fn apply_batches(&mut self, batches: &[Batch<'_>]) -> Result<usize, StoreError> {
        let now = unix(SystemTime::now());
        let mut rows: Vec<(&str, &LearnedRecord)> = Vec::new();
        let mut positions: Vec<(&str, i64)> = Vec::with_capacity(batches.len());
        for b in batches {
            positions.push((b.origin.as_str(), sql_version(b.new_position)?));
            for r in b.records {
                sql_version(r.version)?;
                rows.push((b.origin.as_str(), r));
            }
        }
        // Key order keeps the B-tree writes local; the version guard makes the order of
        // duplicates irrelevant.
        rows.sort_unstable_by(|a, b| (a.0, &a.1.uri).cmp(&(b.0, &b.1.uri)));
        let path = &self.path;
        let err = |context| sql_err(path, context);
        let tx = self.conn.transaction().map_err(err("starting a batch"))?;
        let mut changed = 0;
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
                changed += upsert
                    .execute(params![
                        origin,
                        r.uri,
                        r.route,
                        r.version as i64,
                        r.tombstone,
                        now
                    ])
                    .map_err(err("writing a learned record"))?;
            }
        }
        for (origin, position) in positions {
            set_position(&tx, origin, position, now).map_err(err("writing the position"))?;
        }
        tx.commit().map_err(err("committing a batch"))?;
        Ok(changed)
    }

    /// Every learned record (tombstones included), grouped by origin, for the start-up fill of
    /// the route table.
    pub fn load_learned(&self) -> Result<Vec<OriginRecords>, StoreError> {
        let mut out: Vec<OriginRecords> = Vec::new();
        self.for_each_learned(|origin, record| {
            match out.last_mut() {
                Some(last) if last.origin.as_str() == origin => last.records.push(record),
                _ => {
                    let origin = ClusterId::new(origin).map_err(|e| e.to_string())?;
                    out.push(OriginRecords {
                        origin,
                        records: vec![record],
                    });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams every learned record in (origin, URI) order without collecting them.
    ///
    /// The callback's `Err(reason)` stops the scan and is reported as [`StoreError::Corrupt`].
    pub fn for_each_learned(
        &self,
        mut f: impl FnMut(&str, LearnedRecord) -> Result<(), String>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT origin, uri, route, version, tombstone FROM learned ORDER BY origin, uri",
            )
            .map_err(self.err("preparing the learned scan"))?;
        let mut rows = stmt
            .query([])
            .map_err(self.err("scanning learned records"))?;
        while let Some(row) = rows.next().map_err(self.err("scanning learned records"))? {
            let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(String, LearnedRecord)> {
                Ok((
                    row.get(0)?,
                    LearnedRecord {
                        uri: row.get(1)?,
                        route: row.get(2)?,
                        version: row.get::<_, i64>(3)?.max(0) as u64,
                        tombstone: row.get(4)?,
                    },
                ))
            };
            let (origin, record) = read(row).map_err(self.err("reading a learned record"))?;
            let key = format!("{origin} {}", record.uri);
            f(&origin, record).map_err(|reason| StoreError::Corrupt {
                path: self.path.clone(),
                table: "learned",
                key,
                reason,
            })?;
        }
        Ok(())
    }

    /// `origin`'s records with a version above `after`, ordered by version (what a peer that
    /// holds position `after` is missing).
    pub fn learned_since(
        &self,
        origin: &ClusterId,
        after: u64,
    ) -> Result<Vec<LearnedRecord>, StoreError> {
        let after = sql_version(after)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uri, route, version, tombstone FROM learned
                 WHERE origin = ?1 AND version > ?2 ORDER BY version, uri",
            )
            .map_err(self.err("preparing the delta query"))?;
        let rows = stmt
            .query_map(params![origin.as_str(), after], |row| {
                Ok(LearnedRecord {
                    uri: row.get(0)?,
                    route: row.get(1)?,
                    version: row.get::<_, i64>(2)?.max(0) as u64,
                    tombstone: row.get(3)?,
                })
            })
            .map_err(self.err("querying a delta"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading a delta"))
    }

    /// Per origin cluster, the highest contiguous version applied.
    pub fn positions(&self) -> Result<BTreeMap<ClusterId, u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT origin, version FROM positions")
            .map_err(self.err("preparing the positions query"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err("reading positions"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (origin, version) = row.map_err(self.err("reading positions"))?;
            let id = self.cluster_id("positions", &origin)?;
            out.insert(id, version.max(0) as u64);
        }
        Ok(out)
    }

    /// Forgets everything learned from `origin` (records and position), for a cluster that left
    /// the network. Returns how many records were removed.
    pub fn remove_origin(&mut self, origin: &ClusterId) -> Result<usize, StoreError> {
        let path = &self.path;
        let err = |context| sql_err(path, context);
        let tx = self.conn.transaction().map_err(err("starting a removal"))?;
        let removed = tx
            .execute("DELETE FROM learned WHERE origin = ?1", [origin.as_str()])
            .map_err(err("removing an origin's records"))?;
        tx.execute("DELETE FROM positions WHERE origin = ?1", [origin.as_str()])
            .map_err(err("removing an origin's position"))?;
        tx.commit().map_err(err("committing a removal"))?;
        Ok(removed)
    }

    /// Inserts or replaces a row of the peer vector.
    pub fn save_peer(&mut self, peer: &PeerRecord) -> Result<(), StoreError> {
        let routes: Vec<&str> = peer.route_strings.iter().map(RouteString::as_str).collect();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO peers
                 (cluster_id, name, role, addresses, route_strings, last_sync, state, pinned_cert)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    peer.cluster_id.as_str(),
                    peer.name,
                    peer.role.as_str(),
                    peer.addresses.join(","),
                    routes.join(","),
                    peer.last_sync.map(unix),
                    peer.state,
                    peer.pinned_cert,
                ])
            })
            .map_err(self.err("saving a peer"))?;
        Ok(())
    }

    /// Removes a peer from the peer vector; returns whether it was there.
    pub fn remove_peer(&mut self, cluster_id: &ClusterId) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "DELETE FROM peers WHERE cluster_id = ?1",
                [cluster_id.as_str()],
            )
            .map(|n| n > 0)
            .map_err(self.err("removing a peer"))
    }

    /// The peer vector, ordered by cluster ID.
    pub fn load_peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            Option<i64>,
            String,
            Option<Vec<u8>>,
        );
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT cluster_id, name, role, addresses, route_strings, last_sync, state,
                        pinned_cert FROM peers ORDER BY cluster_id",
            )
            .map_err(self.err("preparing the peer query"))?;
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Row> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .map_err(self.err("reading peers"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, role, addresses, routes, last_sync, state, pinned_cert) =
                row.map_err(self.err("reading peers"))?;
            let cluster_id = self.cluster_id("peers", &id)?;
            let corrupt = |reason: String| StoreError::Corrupt {
                path: self.path.clone(),
                table: "peers",
                key: id.clone(),
                reason,
            };
            let role = role.parse::<Role>().map_err(|e| corrupt(e.to_string()))?;
            let route_strings = split_list(&routes)
                .map(|r| {
                    RouteString::new(r).map_err(|e| corrupt(format!("route string {r:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            out.push(PeerRecord {
                cluster_id,
                name,
                role,
                addresses: split_list(&addresses).map(str::to_owned).collect(),
                route_strings,
                last_sync: last_sync.map(from_unix),
                state,
                pinned_cert,
            });
        }
        Ok(out)
    }

    /// The highest version this cluster has issued (0 for a new store).
    pub fn own_version(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'own_version'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0).max(0) as u64)
            .map_err(self.err("reading the own version"))
    }

    /// Saves changed own records in one durable transaction and raises the own version counter
    /// to the highest version among them (it never goes down).
    pub fn save_own_records(&mut self, records: &[OwnRecord]) -> Result<(), StoreError> {
        let now = unix(SystemTime::now());
        let mut highest = 0;
        for r in records {
            highest = highest.max(sql_version(r.version)?);
        }
        let path = &self.path;
        let err = |context| sql_err(path, context);
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting an own-record update"))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO own_records (uri, route, version, tombstone, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err("preparing the own-record upsert"))?;
            for r in records {
                upsert
                    .execute(params![r.uri, r.route, r.version as i64, r.tombstone, now])
                    .map_err(err("writing an own record"))?;
            }
        }
        tx.execute(
            "UPDATE meta SET value = max(value, ?1) WHERE key = 'own_version'",
            [highest],
        )
        .map_err(err("raising the own version"))?;
        tx.commit().map_err(err("committing own records"))?;
        Ok(())
    }

    /// This cluster's own records (tombstones included), ordered by URI.
    pub fn load_own_records(&self) -> Result<Vec<OwnRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT uri, route, version, tombstone FROM own_records ORDER BY uri")
            .map_err(self.err("preparing the own-record query"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(OwnRecord {
                    uri: row.get(0)?,
                    route: row.get(1)?,
                    version: row.get::<_, i64>(2)?.max(0) as u64,
                    tombstone: row.get(3)?,
                })
            })
            .map_err(self.err("reading own records"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading own records"))
    }

    /// Deletes learned and own tombstones last changed before `older_than`; returns how many.
    ///
    /// Collect only tombstones every peer has had time to receive (several sync intervals),
    /// or a peer that missed one would keep the deleted URI.
    pub fn collect_tombstones(&mut self, older_than: SystemTime) -> Result<usize, StoreError> {
        let cutoff = unix(older_than);
        let path = &self.path;
        let err = |context| sql_err(path, context);
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting tombstone collection"))?;
        let learned = tx
            .execute(
                "DELETE FROM learned WHERE tombstone = 1 AND updated_at < ?1",
                [cutoff],
            )
            .map_err(err("collecting learned tombstones"))?;
        let own = tx
            .execute(
                "DELETE FROM own_records WHERE tombstone = 1 AND updated_at < ?1",
                [cutoff],
            )
            .map_err(err("collecting own tombstones"))?;
        tx.commit()
            .map_err(err("committing tombstone collection"))?;
        Ok(learned + own)
    }

    /// Row counts, for the operators' view.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.conn
            .query_row(
                "SELECT
                    (SELECT COUNT(*) FROM learned WHERE tombstone = 0),
                    (SELECT COUNT(*) FROM learned WHERE tombstone = 1),
                    (SELECT COUNT(*) FROM own_records WHERE tombstone = 0),
                    (SELECT COUNT(*) FROM peers)",
                [],
                |r| {
                    Ok(StoreCounts {
                        learned: r.get::<_, i64>(0)?.max(0) as u64,
                        learned_tombstones: r.get::<_, i64>(1)?.max(0) as u64,
                        own: r.get::<_, i64>(2)?.max(0) as u64,
                        peers: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )
            .map_err(self.err("counting rows"))
    }

    /// Closes the database, checkpointing the WAL into the main file.
    pub fn close(self) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.conn.close().map_err(|(_, source)| StoreError::Sqlite {
            path,
            context: "closing the database",
            source,
        })
    }

    fn err(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.path, context)
    }

    fn cluster_id(&self, table: &'static str, id: &str) -> Result<ClusterId, StoreError> {
        ClusterId::new(id).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            table,
            key: id.to_owned(),
            reason: format!("cluster ID: {e}"),
        })
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |context| sql_err(path, context);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     INTEGER NOT NULL PRIMARY KEY,
            description TEXT    NOT NULL,
            applied_at  INTEGER NOT NULL
        )",
    )
    .map_err(err("creating the migration table"))?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err("reading the schema version"))?;
    if current > Store::SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: current,
            supported: Store::SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction().map_err(err("starting a migration"))?;
        tx.execute_batch(m.sql)
            .map_err(err("applying a migration"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.description, unix(SystemTime::now())],
        )
        .map_err(err("recording a migration"))?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(err("recording a migration"))?;
        tx.commit().map_err(err("committing a migration"))?;
    }
    Ok(())
}

fn set_position(
    tx: &Transaction<'_>,
    origin: &str,
    version: i64,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO positions (origin, version, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (origin) DO UPDATE SET
            version = max(positions.version, excluded.version), updated_at = excluded.updated_at",
    )?
    .execute(params![origin, version, now])?;
    Ok(())
}

fn sql_err<'a>(
    path: &'a Path,
    context: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        context,
        source,
    }
}

fn sql_version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::VersionOutOfRange(v))
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
