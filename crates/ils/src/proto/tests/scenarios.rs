//! Replication scenarios: join, push, reconnect with deltas, tombstones, lost frames.

use std::time::Duration;

use super::mesh::{Mesh, SYNC, route, uri};
use crate::proto::{Event, Frame, PeerState};

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// HQ hub with BR spoke, joined.
fn hq_br() -> Mesh {
    let mut m = Mesh::new();
    m.hub("HQ", None).spoke("BR", "HQ");
    m.run();
    m
}

#[test]
fn spoke_joins_and_both_learn_each_others_uris() {
    let mut m = hq_br();
    assert_eq!(m.links_of("BR"), ["HQ"]);
    m.advertise("HQ", &["alice", "carol"]);
    m.advertise("BR", &["bob"]);
    assert_eq!(
        m.learned("BR"),
        [
            (
                "alice@hq.example.com".into(),
                "HQ".into(),
                "hq.route".into()
            ),
            (
                "carol@hq.example.com".into(),
                "HQ".into(),
                "hq.route".into()
            ),
        ]
    );
    assert_eq!(
        m.learned("HQ"),
        [("bob@br.example.com".into(), "BR".into(), "br.route".into())]
    );
    let now = m.now;
    let peers = m.node("BR").peers(now);
    let hq = peers
        .iter()
        .find(|p| p.cluster_id.as_str() == "HQ")
        .expect("HQ in peer vector");
    assert_eq!((hq.state, hq.linked, hq.records), (PeerState::Up, true, 2));
    assert_eq!(hq.route_strings, ["hq.route"]);
}

#[test]
fn records_already_held_are_synced_at_join() {
    let mut m = Mesh::new();
    m.hub("HQ", None);
    let names = users("u", 250);
    m.advertise("HQ", &as_refs(&names));
    m.spoke("BR", "HQ");
    m.run();
    assert_eq!(m.learned("BR").len(), 250);
    assert_eq!(m.records_sent("HQ", "BR"), 250);
    // About one copy of the data on the wire: no record is sent twice.
    let per_record = m.bytes_sent("HQ", "BR") / 250;
    assert!(per_record < 40, "{per_record} bytes per record");
    assert!(
        m.events("BR")
            .iter()
            .any(|e| matches!(e, Event::Synced { .. }))
    );
}

#[test]
fn one_change_reaches_every_cluster_through_hub_hub_spoke_exactly_once() {
    let mut m = Mesh::new();
    m.hub("H1", None)
        .hub("H2", Some("H1"))
        .spoke("S1", "H1")
        .spoke("S2", "H2");
    m.run();
    m.log.clear();
    m.advertise("S1", &["dave"]);
    // No clock movement: pushed at once, relayed S1 -> H1 -> H2 -> S2.
    for n in ["H1", "H2", "S2"] {
        assert_eq!(
            m.records(n, "S1"),
            [("dave@s1.example.com".into(), "s1.route".into())],
            "{n}"
        );
    }
    assert_eq!(m.records_sent("S1", "H1"), 1);
    assert_eq!(m.records_sent("H1", "H2"), 1);
    assert_eq!(m.records_sent("H2", "S2"), 1);
    assert_eq!(m.total_records_sent(), 3, "nothing loops back: {:?}", m.log);
}

#[test]
fn reconnect_sends_only_the_changes_made_while_apart() {
    let mut m = hq_br();
    let mut names = users("u", 1000);
    m.advertise("HQ", &as_refs(&names));
    m.partition("HQ", "BR");
    // While apart: two added, two removed, and one re-advertised with another route string.
    names.drain(0..2);
    names.push("new1".into());
    names.push("new2".into());
    let now = m.now;
    let mut records: Vec<_> = names.iter().map(|u| (uri(u, "HQ"), route("HQ"))).collect();
    records[10].1 = route("HQX");
    m.node("HQ").advertise(now, records);
    m.log.clear();
    m.heal("HQ", "BR");
    m.advance(Duration::from_secs(60));
    assert_eq!(m.links_of("BR"), ["HQ"]);
    assert_eq!(m.records_sent("HQ", "BR"), 5, "only the delta: {:?}", m.log);
    assert_eq!(m.records("BR", "HQ"), m.records("HQ", "HQ"));
    assert_eq!(m.learned("BR").len(), 1000);
    assert!(
        m.learned("BR")
            .iter()
            .any(|(u, _, r)| u.starts_with("u00012") && r == "hqx.route")
    );
}

#[test]
fn removals_travel_as_tombstones_which_are_collected_later() {
    let mut m = hq_br();
    m.advertise("HQ", &["alice", "carol"]);
    m.advertise("HQ", &["alice"]);
    assert_eq!(m.learned("BR").len(), 1);
    assert_eq!(m.node("BR").origin_summary("HQ"), Some((3, 1, 1)));
    m.advance(Duration::from_secs(25 * 3600));
    assert_eq!(m.node("BR").origin_summary("HQ"), Some((3, 1, 0)));
    assert_eq!(m.node("HQ").origin_summary("HQ"), Some((3, 1, 0)));
    assert_eq!(m.node("HQ").stats().tombstones_collected, 1);
}

#[test]
fn peer_that_missed_a_collected_tombstone_is_repaired_in_full() {
    let mut m = hq_br();
    m.advertise("HQ", &["alice", "carol", "erin"]);
    m.partition("HQ", "BR");
    m.advertise("HQ", &["alice", "erin"]);
    // The tombstone of carol is collected while BR is away.
    m.advance(Duration::from_secs(25 * 3600));
    assert_eq!(m.node("HQ").origin_summary("HQ"), Some((4, 2, 0)));
    m.heal("HQ", "BR");
    m.advance(Duration::from_secs(60));
    let learned: Vec<String> = m.learned("BR").into_iter().map(|e| e.0).collect();
    assert_eq!(learned, ["alice@hq.example.com", "erin@hq.example.com"]);
    assert_eq!(m.records("BR", "HQ"), m.records("HQ", "HQ"));
}

#[test]
fn lost_frames_are_repaired_by_the_next_anti_entropy_pass() {
    let mut m = hq_br();
    m.advertise("HQ", &["alice", "carol"]);
    // Lose the next push (a new URI and a removal) on its way to BR.
    m.lose = Some(Box::new(|s, _| s.from == "HQ" && s.name == "Records"));
    m.advertise("HQ", &["alice", "dave"]);
    m.lose = None;
    assert_eq!(m.learned("BR").len(), 2, "BR still has the old set");
    assert!(
        m.learned("BR")
            .iter()
            .any(|e| e.0 == "carol@hq.example.com")
    );
    m.log.clear();
    m.advance(SYNC);
    let learned: Vec<String> = m.learned("BR").into_iter().map(|e| e.0).collect();
    assert_eq!(learned, ["alice@hq.example.com", "dave@hq.example.com"]);
    let stats = m.node("BR").stats().clone();
    assert_eq!(stats.digest_mismatches, 1);
    assert_eq!(stats.records_repaired, 2, "dave added, carol removed");
    assert!(
        m.events("BR")
            .iter()
            .any(|e| matches!(e, Event::Repaired { records: 2, .. }))
    );
    // Only the differing buckets travelled.
    let repaired: usize = m.log.iter().filter(|s| s.repair).map(|s| s.records).sum();
    assert!(repaired <= 2, "{repaired} records in the repair");
    // The next pass finds nothing to repair.
    m.advance(SYNC);
    assert_eq!(m.node("BR").stats().digest_mismatches, 1);
}

#[test]
fn a_lost_ack_or_digest_does_not_stall_replication() {
    let mut m = hq_br();
    let names = users("u", 500);
    m.lose = Some(Box::new(|s, f| {
        s.from == "BR" && matches!(f, Frame::Ack(a) if a.seq == 2)
    }));
    m.advertise("HQ", &as_refs(&names));
    m.lose = None;
    // Acks are cumulative: a later one releases the window.
    assert_eq!(m.learned("BR").len(), 500);
}

#[test]
fn learned_cap_and_conflicts_are_reported() {
    let mut m = Mesh::new();
    m.hub("HQ", None);
    m.add_with_sink(
        Mesh::config("BR", dialplan::Role::Spoke, Some("HQ")),
        std::sync::Arc::new(crate::MemorySink::with_cap(2)),
    );
    m.run();
    m.advertise("HQ", &["a", "b", "c"]);
    assert_eq!(m.learned("BR").len(), 2);
    assert!(
        m.events("BR")
            .iter()
            .any(|e| matches!(e, Event::TableReport { report, .. } if report.refused_cap == 1))
    );
    assert_eq!(m.node("BR").stats().table_refused_cap, 1);

    // Two spokes advertising one URI: the hub's table keeps the first and reports a conflict.
    let mut m = Mesh::new();
    m.hub("HQ", None).spoke("B1", "HQ").spoke("B2", "HQ");
    m.run();
    let same = (uri("x", "shared"), route("B1"));
    let now = m.now;
    m.node("B1").advertise(now, [same.clone()]);
    m.run();
    m.node("B2").advertise(now, [(same.0, route("B2"))]);
    m.run();
    assert!(
        m.events("HQ")
            .iter()
            .any(|e| matches!(e, Event::TableReport { report, .. } if report.new_conflicts == 1))
    );
}

#[test]
fn a_cluster_that_lost_its_state_reseeds_and_its_stale_records_are_removed() {
    let mut m = hq_br();
    m.advertise("BR", &["bob", "old1", "old2"]);
    assert_eq!(m.records("HQ", "BR").len(), 3);
    // BR comes back with no state, advertising a new set.
    m.kill("BR");
    m.spoke("BR", "HQ");
    m.advertise("BR", &["bob", "zed"]);
    m.advance(Duration::from_secs(5));
    assert!(
        m.events("BR")
            .iter()
            .any(|e| matches!(e, Event::Reseeded { .. }))
    );
    m.advance(SYNC);
    assert_eq!(m.records("HQ", "BR"), m.records("BR", "BR"));
    let learned: Vec<String> = m.learned("HQ").into_iter().map(|e| e.0).collect();
    assert_eq!(learned, ["bob@br.example.com", "zed@br.example.com"]);
}
