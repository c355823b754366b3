//! The schema migrations, applied in order at open.

/// One schema step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Never edit a released one: add a new step.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "learned records, positions, peer vector, own records",
        sql: "
CREATE TABLE learned (
    origin     TEXT    NOT NULL,
    uri        TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    tombstone  INTEGER NOT NULL DEFAULT 0 CHECK (tombstone IN (0, 1)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (origin, uri)
) WITHOUT ROWID;

CREATE INDEX learned_tombstones ON learned (updated_at) WHERE tombstone = 1;

CREATE TABLE positions (
    origin     TEXT    NOT NULL PRIMARY KEY,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE peers (
    cluster_id    TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('hub', 'spoke', 'standalone')),
    addresses     TEXT    NOT NULL,
    route_strings TEXT    NOT NULL,
    last_sync     INTEGER,
    state         TEXT    NOT NULL,
    pinned_cert   BLOB
);

CREATE TABLE own_records (
    uri        TEXT    NOT NULL PRIMARY KEY,
    route      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    tombstone  INTEGER NOT NULL DEFAULT 0 CHECK (tombstone IN (0, 1)),
    updated_at INTEGER NOT NULL
);

CREATE TABLE meta (
    key   TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('own_version', 0);
",
    },
    Migration {
        version: 2,
        description: "tombstone collection floors",
        sql: "
ALTER TABLE positions ADD COLUMN gc_floor INTEGER NOT NULL DEFAULT 0;
INSERT INTO meta (key, value) VALUES ('own_gc_floor', 0);
",
    },
];
