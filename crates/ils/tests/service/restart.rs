//! Restarts: learned entries are routed at once from the store, and a reconnect exchanges
//! only what changed.

use std::time::{Duration, Instant};

use dialplan::Role;
use ils::auth::AuthMode;
use ils::store::Store;

use crate::support::*;

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_spoke_routes_at_once_and_resumes_with_deltas_only() {
    let dir = tempfile::tempdir().expect("dir");
    let (hq_dir, br_dir) = (dir.path().join("hq"), dir.path().join("br"));
    let hq = launch(
        setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    let spoke = |registrar: String| {
        let mut s = setup("BR", Role::Spoke, &br_dir, AuthMode::TlsPassword);
        s.registrar = Some(registrar);
        s
    };
    let br = launch(spoke(hq.tls.to_string()), any_port()).await;
    let first = users("u", 500);
    hq.service.advertise(records("HQ", &refs(&first)));
    br.service.advertise(records("BR", &["bob"]));
    eventually("BR learns 500", || br.table.len() == 500).await;
    eventually("HQ learns bob", || hq.table.len() == 1).await;
    // Acknowledged means written: once HQ saw every ack, BR's store holds all 500.
    eventually("all written", || {
        br.service.stats().records_persisted >= 501
    })
    .await;
    eventually("all acknowledged", || {
        hq.service
            .peers()
            .iter()
            .any(|p| p.cluster_id.as_str() == "BR" && p.pending_records == 0)
    })
    .await;
    br.stop().await;

    // While BR is down: 3 added, 2 removed at HQ.
    let mut now_set = first[2..].to_vec();
    now_set.extend(users("new", 3));
    hq.service.advertise(records("HQ", &refs(&now_set)));
    let sent_before = hq.service.stats().node.records_sent;

    // Point the restarted spoke at a closed port first: the table is full before any link.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let br = launch(spoke(closed_addr), any_port()).await;
    assert_eq!(
        br.table.len(),
        500,
        "learned entries restored before any link"
    );
    assert!(br.table.contains(&uri("u0", "HQ")));
    assert!(!br.linked("HQ"));
    br.stop().await;

    let br = launch(spoke(hq.tls.to_string()), any_port()).await;
    assert_eq!(br.table.len(), 500);
    eventually("BR catches up", || {
        br.table.len() == 501 && !br.table.contains(&uri("u0", "HQ"))
    })
    .await;
    eventually("sync complete", || {
        br.service
            .peers()
            .iter()
            .any(|p| p.cluster_id.as_str() == "HQ" && p.last_sync.is_some())
    })
    .await;
    let received = br.service.stats().node.records_received;
    let sent = hq.service.stats().node.records_sent - sent_before;
    assert_eq!(sent, 5, "HQ sent only the 3 additions and 2 tombstones");
    assert_eq!(received, 5);
    // BR re-advertises the same set after its restart: nothing changes for HQ.
    let report = br.service.advertise(records("BR", &["bob"]));
    assert_eq!(report.unchanged, 1);
    assert_eq!(report.added + report.changed + report.removed, 0);
    br.stop().await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_keeps_what_it_learned_and_resumes_with_deltas_only() {
    let dir = tempfile::tempdir().expect("dir");
    let (hq_dir, br_dir) = (dir.path().join("hq"), dir.path().join("br"));
    let hq = launch(
        setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    let addr = hq.tls;
    let mut s = setup("BR", Role::Spoke, &br_dir, AuthMode::TlsPassword);
    s.registrar = Some(addr.to_string());
    let br = launch(s, any_port()).await;
    let mine = users("b", 200);
    br.service.advertise(records("BR", &refs(&mine)));
    hq.service.advertise(records("HQ", &["alice"]));
    eventually("HQ learns 200", || hq.table.len() == 200).await;
    eventually("BR learns alice", || br.table.len() == 1).await;
    // The spoke acknowledged everything, so the hub's copy is on disk.
    hq.stop().await;

    br.service.advertise(records("BR", &refs(&users("b", 201))));
    let sent_before = br.service.stats().node.records_sent;
    let hq = launch(setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword), addr).await;
    assert_eq!(
        hq.table.len(),
        200,
        "the hub routes what it learned at once"
    );
    // The hub re-advertises its own set: unchanged, nothing new for BR.
    let report = hq.service.advertise(records("HQ", &["alice"]));
    assert_eq!(report.unchanged, 1);
    eventually("HQ gets the one change", || hq.table.len() == 201).await;
    eventually("synced", || {
        hq.service
            .peers()
            .iter()
            .any(|p| p.cluster_id.as_str() == "BR" && p.last_sync.is_some())
    })
    .await;
    assert_eq!(br.service.stats().node.records_sent - sent_before, 1);
    assert_eq!(hq.service.stats().node.records_received, 1);
    assert_eq!(br.table.len(), 1);
    br.stop().await;
    hq.stop().await;
}

/// A graceful stop right after a password join loses nothing: both peer vectors are on disk,
/// with the certificate the password vouched for pinned, and the stop does not wait out its
/// grace period once the links are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_right_after_a_join_keeps_the_peer_rows_and_pins_and_is_prompt() {
    let dir = tempfile::tempdir().expect("dir");
    let (hq_dir, br_dir) = (dir.path().join("hq"), dir.path().join("br"));
    let hq = launch(
        setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    let br = launch(spoke_of(&hq, &br_dir, AuthMode::TlsPassword), any_port()).await;
    eventually("joined", || hq.linked("BR") && br.linked("HQ")).await;
    let grace = Duration::from_secs(30);
    let start = Instant::now();
    br.service.shutdown(grace).await;
    hq.service.shutdown(grace).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    drop((hq, br));
    for (dir, peer) in [(&hq_dir, "BR"), (&br_dir, "HQ")] {
        let store = Store::open(&dir.join(ils::STORE_FILE)).expect("store");
        let rows = store.load_peers().expect("peers");
        let row = rows
            .iter()
            .find(|r| r.cluster_id.as_str() == peer)
            .unwrap_or_else(|| panic!("{peer} missing from {}: {rows:?}", dir.display()));
        assert_eq!(row.name, name(peer));
        assert!(row.pinned_cert.is_some(), "{peer}'s certificate not pinned");
    }
}
