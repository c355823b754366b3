//! The ILS store: round trips, restarts, atomic batches, tombstones, and a killed process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use dialplan::{ClusterId, Role, RouteString};
use ils::store::{LearnedRecord, OwnRecord, PeerRecord, Store, StoreError};

fn id(s: &str) -> ClusterId {
    ClusterId::new(s).expect("cluster id")
}

fn rec(uri: &str, version: u64) -> LearnedRecord {
    LearnedRecord {
        uri: uri.to_owned(),
        route: "hq.route".to_owned(),
        version,
        tombstone: false,
    }
}

fn records(prefix: &str, from: u64, to: u64) -> Vec<LearnedRecord> {
    (from..=to)
        .map(|v| rec(&format!("{prefix}{v}@hq.example.com"), v))
        .collect()
}

fn peer(id_: &str) -> PeerRecord {
    PeerRecord {
        cluster_id: id(id_),
        name: format!("{}.example.com", id_.to_ascii_lowercase()),
        role: Role::Hub,
        addresses: vec![
            "192.0.2.10:7501".to_owned(),
            "[2001:db8::10]:7501".to_owned(),
        ],
        route_strings: vec![RouteString::new("hq.route").expect("route")],
        last_sync: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        state: "connected".to_owned(),
        pinned_cert: Some(vec![0x30, 0x82, 1, 2, 3]),
    }
}

#[test]
fn round_trip_and_restart_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ils.db");
    let hq = id("HQ");
    let dr = id("DR");
    {
        let mut store = Store::open(&path).expect("open");
        assert_eq!(
            store.schema_version().expect("schema"),
            Store::SCHEMA_VERSION
        );
        assert_eq!(store.own_version().expect("own"), 0);
        assert_eq!(
            store
                .apply_batch(&hq, &records("a", 1, 3), 3)
                .expect("batch"),
            3
        );
        assert_eq!(
            store
                .apply_batch(&dr, &records("d", 1, 2), 2)
                .expect("batch"),
            2
        );
        store.save_peer(&peer("HQ")).expect("peer");
        let mut no_cert = peer("DR");
        no_cert.pinned_cert = None;
        no_cert.last_sync = None;
        no_cert.role = Role::Spoke;
        store.save_peer(&no_cert).expect("peer");
        store
            .save_own_records(&[OwnRecord {
                uri: "bob@br.example.com".to_owned(),
                route: "br.route".to_owned(),
                version: 7,
                tombstone: false,
            }])
            .expect("own");
        store.close().expect("close");
    }
    let store = Store::open(&path).expect("reopen");
    let learned = store.load_learned().expect("load");
    assert_eq!(learned.len(), 2);
    assert_eq!(learned[0].origin, dr);
    assert_eq!(learned[1].origin, hq);
    assert_eq!(learned[1].records, records("a", 1, 3));
    let positions = store.positions().expect("positions");
    assert_eq!(positions.get(&hq), Some(&3));
    assert_eq!(positions.get(&dr), Some(&2));
    let peers = store.load_peers().expect("peers");
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[1], peer("HQ"));
    assert_eq!(peers[0].role, Role::Spoke);
    assert_eq!(peers[0].pinned_cert, None);
    assert_eq!(store.own_version().expect("own"), 7);
    assert_eq!(
        store.load_own_records().expect("own")[0].uri,
        "bob@br.example.com"
    );
    assert_eq!(
        store.learned_since(&hq, 1).expect("delta"),
        records("a", 2, 3)
    );
    let counts = store.counts().expect("counts");
    assert_eq!((counts.learned, counts.own, counts.peers), (5, 1, 2));
}

#[test]
fn versions_and_positions_never_go_backwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("ils.db")).expect("open");
    let hq = id("HQ");
    store.apply_batch(&hq, &[rec("a@x", 5)], 5).expect("batch");
    // A late, older copy of the record and an older position change nothing.
    assert_eq!(
        store.apply_batch(&hq, &[rec("a@x", 3)], 3).expect("stale"),
        0
    );
    assert_eq!(store.positions().expect("pos")[&hq], 5);
    assert_eq!(store.load_learned().expect("load")[0].records[0].version, 5);
    // Own version: a lower save does not lower the counter.
    let own = |v| OwnRecord {
        uri: "a@br".to_owned(),
        route: "br.route".to_owned(),
        version: v,
        tombstone: false,
    };
    store.save_own_records(&[own(9)]).expect("own");
    store.save_own_records(&[own(4)]).expect("own");
    assert_eq!(store.own_version().expect("own"), 9);
    assert!(matches!(
        store.apply_batch(&hq, &[rec("b@x", u64::MAX)], 6),
        Err(StoreError::VersionOutOfRange(_))
    ));
    assert_eq!(store.remove_origin(&hq).expect("remove"), 1);
    assert!(store.positions().expect("pos").is_empty());
}

#[test]
fn a_failed_batch_leaves_nothing_half_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ils.db");
    let hq = id("HQ");
    let mut store = Store::open(&path).expect("open");
    store
        .apply_batch(&hq, &records("a", 1, 2), 2)
        .expect("batch");
    // Make the third record of the next batch fail inside the transaction.
    let other = rusqlite::Connection::open(&path).expect("second connection");
    other
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON learned WHEN NEW.uri = 'poison@x'
             BEGIN SELECT RAISE(ABORT, 'poisoned record'); END;",
        )
        .expect("trigger");
    let mut batch = records("b", 3, 4);
    batch.push(rec("poison@x", 5));
    batch.extend(records("b", 6, 7));
    let err = store.apply_batch(&hq, &batch, 7).unwrap_err();
    assert!(err.to_string().contains("poisoned record"), "{err}");
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.positions().expect("pos")[&hq], 2);
    assert_eq!(
        store.load_learned().expect("load")[0].records,
        records("a", 1, 2)
    );
}

#[test]
fn tombstones_are_kept_then_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("ils.db")).expect("open");
    let hq = id("HQ");
    store
        .apply_batch(&hq, &records("a", 1, 3), 3)
        .expect("batch");
    let mut gone = rec("a2@hq.example.com", 4);
    gone.tombstone = true;
    store.apply_batch(&hq, &[gone.clone()], 4).expect("delete");
    let learned = store.load_learned().expect("load");
    assert!(learned[0].records.contains(&gone));
    assert_eq!(store.counts().expect("counts").learned_tombstones, 1);
    store
        .save_own_records(&[OwnRecord {
            uri: "old@br".to_owned(),
            route: "br.route".to_owned(),
            version: 12,
            tombstone: true,
        }])
        .expect("own");
    // Not old enough yet.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.collect_tombstones(an_hour_ago).expect("collect"), 0);
    let later = SystemTime::now() + Duration::from_secs(2);
    assert_eq!(store.collect_tombstones(later).expect("collect"), 2);
    let left: Vec<String> = store.load_learned().expect("load")[0]
        .records
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(left, vec!["a1@hq.example.com", "a3@hq.example.com"]);
    assert_eq!(
        store.own_version().expect("own"),
        12,
        "the counter survives collection"
    );
    assert_eq!(store.positions().expect("pos")[&hq], 4);
}

#[test]
fn newer_schema_and_corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ils.db");
    Store::open(&path).expect("open").close().expect("close");
    let other = rusqlite::Connection::open(&path).expect("conn");
    other
        .execute(
            "INSERT INTO positions (origin, version, updated_at) VALUES ('bad id!', 1, 0)",
            [],
        )
        .expect("insert");
    let store = Store::open(&path).expect("open");
    assert!(matches!(
        store.positions(),
        Err(StoreError::Corrupt {
            table: "positions",
            ..
        })
    ));
    drop(store);
    other
        .execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', 0)",
            [],
        )
        .expect("insert");
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

const CHILD_ENV: &str = "ILS_STORE_CRASH_CHILD";
const CHILD_BATCH: u64 = 200;

/// Runs only as the child of `a_killed_process_loses_nothing_acknowledged`: writes batches and
/// acknowledges each on stdout once `apply_batch` returned, until it is killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut store = Store::open(Path::new(&path)).expect("child open");
    let hq = id("HQ");
    let mut out = std::io::stdout().lock();
    for n in 1..=5_000u64 {
        let from = (n - 1) * CHILD_BATCH + 1;
        let to = n * CHILD_BATCH;
        store
            .apply_batch(&hq, &records("c", from, to), to)
            .expect("child batch");
        writeln!(out, "ack {to}").expect("ack");
        out.flush().expect("flush");
    }
}

#[test]
fn a_killed_process_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ils.db");
    Store::open(&path).expect("create").close().expect("close");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = 0u64;
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read ack");
        if let Some(v) = line.strip_prefix("ack ") {
            acked = v.parse().expect("ack number");
            // Kill it mid-stream, while it is writing the next batch.
            if acked >= 30 * CHILD_BATCH || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(acked > 0, "the child acknowledged nothing");
    let store = Store::open(&path).expect("reopen after crash");
    let position = store.positions().expect("positions")[&id("HQ")];
    assert!(
        position >= acked,
        "position {position} < acknowledged {acked}"
    );
    let learned = store.load_learned().expect("load");
    let versions: std::collections::HashSet<u64> =
        learned[0].records.iter().map(|r| r.version).collect();
    assert_eq!(
        versions.len() as u64,
        position,
        "records match the position"
    );
    assert!((1..=acked).all(|v| versions.contains(&v)));
}

#[test]
fn hundred_thousand_records_store_and_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ils.db");
    let hq = id("HQ");
    let batch = records("u", 1, 100_000);
    let t = Instant::now();
    let mut store = Store::open(&path).expect("open");
    store.apply_batch(&hq, &batch, 100_000).expect("batch");
    let stored = t.elapsed();
    drop(store);
    let t = Instant::now();
    let store = Store::open(&path).expect("reopen");
    let loaded = store.load_learned().expect("load");
    let load = t.elapsed();
    assert_eq!(loaded[0].records.len(), 100_000);
    println!("100k records (debug build): store {stored:?}, reopen + load {load:?}");
}

#[test]
fn grouped_batches_commit_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("ils.db")).expect("open");
    let (hq, dr) = (id("HQ"), id("DR"));
    let a = records("a", 1, 10);
    let b = records("b", 11, 20);
    let d = records("d", 1, 5);
    let batches = [
        ils::store::Batch {
            origin: &hq,
            records: &a,
            new_position: 10,
        },
        ils::store::Batch {
            origin: &hq,
            records: &b,
            new_position: 20,
        },
        ils::store::Batch {
            origin: &dr,
            records: &d,
            new_position: 5,
        },
    ];
    assert_eq!(store.apply_batches(&batches).expect("group"), 25);
    let positions = store.positions().expect("positions");
    assert_eq!((positions[&hq], positions[&dr]), (20, 5));
}
