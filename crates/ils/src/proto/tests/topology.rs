//! Topology scenarios: hub mesh, failover, refusals at join.

use dialplan::Role;

use super::mesh::Mesh;
use crate::proto::{Event, RefuseReason};

fn refusals(m: &Mesh, name: &str) -> Vec<(RefuseReason, bool, String)> {
    m.events(name)
        .iter()
        .filter_map(|e| match e {
            Event::Refused {
                reason,
                by_peer,
                detail,
                ..
            } => Some((*reason, *by_peer, detail.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_later_hub_learns_every_hub_and_meshes_with_all_of_them() {
    let mut m = Mesh::new();
    m.hub("H1", None).hub("H2", Some("H1")).spoke("S2", "H2");
    m.run();
    m.advertise("S2", &["sam"]);
    // H3 names only H1, learns H2 from the peer vector and dials it on its own.
    m.hub("H3", Some("H1")).spoke("S3", "H3");
    m.run();
    assert_eq!(m.links_of("H3"), ["H1", "H2", "S3"]);
    assert_eq!(m.links_of("H2"), ["H1", "H3", "S2"]);
    assert_eq!(m.links_of("H1"), ["H2", "H3"]);
    // S2's record reached S3 through H2 -> H3 (not also through H1).
    assert_eq!(m.records("S3", "S2").len(), 1);
    assert_eq!(m.records_sent("H1", "H3"), 0);
    // Every spoke knows every cluster.
    let now = m.now;
    let ids: Vec<String> = m
        .node("S3")
        .peers(now)
        .iter()
        .map(|p| p.cluster_id.to_string())
        .collect();
    assert_eq!(ids, ["S3", "H1", "H2", "H3", "S2"]);
}

#[test]
fn hubs_dialing_each_other_at_once_keep_exactly_one_link() {
    let mut m = Mesh::new();
    m.hub("H1", None)
        .hub("H2", Some("H1"))
        .hub("H3", Some("H1"));
    m.run();
    for h in ["H1", "H2", "H3"] {
        assert_eq!(m.links_of(h).len(), 2, "{h}: {:?}", m.links_of(h));
    }
    // A keepalive period later nothing has flapped.
    m.advance(std::time::Duration::from_secs(120));
    for h in ["H1", "H2", "H3"] {
        assert_eq!(m.links_of(h).len(), 2, "{h}");
    }
}

#[test]
fn spoke_fails_over_to_its_backup_hub_and_keeps_replicating() {
    let mut m = Mesh::new();
    m.hub("H1", None).hub("H2", Some("H1"));
    let mut c = Mesh::config("BR", Role::Spoke, Some("H1"));
    c.backup_hubs = vec!["H2".into()];
    m.add(c);
    m.run();
    m.advertise("H2", &["hank"]);
    m.advertise("BR", &["bob"]);
    assert_eq!(m.links_of("BR"), ["H1"]);
    m.kill("H1");
    m.run();
    assert_eq!(m.links_of("BR"), ["H2"]);
    // Nothing learned is lost, and new changes flow through the backup hub.
    assert_eq!(m.records("BR", "H2").len(), 1);
    m.advertise("BR", &["bob", "betty"]);
    assert_eq!(m.records("H2", "BR").len(), 2);
    m.advertise("H2", &["hank", "hugo"]);
    assert_eq!(m.records("BR", "H2").len(), 2);
}

#[test]
fn spoke_retries_its_registrar_with_backoff_until_it_appears() {
    let mut m = Mesh::new();
    m.spoke("BR", "HQ");
    m.run();
    m.advance(std::time::Duration::from_secs(3));
    let dials = m
        .events("BR")
        .iter()
        .filter(|e| matches!(e, Event::Dial { .. }))
        .count();
    assert!((2..=4).contains(&dials), "{dials} dials in 3 s");
    m.hub("HQ", None);
    m.advance(std::time::Duration::from_secs(31));
    assert_eq!(m.links_of("BR"), ["HQ"]);
}

#[test]
fn duplicate_cluster_id_is_refused_with_a_clear_error_on_both_sides() {
    let mut m = Mesh::new();
    m.hub("HQ", None).spoke("BR", "HQ");
    m.run();
    // A second cluster configured with ID BR, under another name.
    let mut c = Mesh::config("BR", Role::Spoke, Some("HQ"));
    c.identity.cluster_name = "br2.example.com".into();
    c.identity.addresses = vec!["BR2".into()];
    m.add(c);
    m.run();
    let at_hub = refusals(&m, "HQ");
    let at_new = refusals(&m, "BR2");
    assert_eq!(at_hub.len(), 1);
    assert_eq!(
        (at_hub[0].0, at_hub[0].1),
        (RefuseReason::DuplicateClusterId, false)
    );
    assert!(
        at_hub[0].2.contains("duplicate cluster ID BR"),
        "{}",
        at_hub[0].2
    );
    assert!(at_hub[0].2.contains("br2.example.com"), "{}", at_hub[0].2);
    assert_eq!(
        (at_new[0].0, at_new[0].1),
        (RefuseReason::DuplicateClusterId, true)
    );
    assert_eq!(at_new[0].2, at_hub[0].2, "both sides log the same sentence");
    // The original BR is untouched.
    assert_eq!(m.links_of("HQ"), ["BR"]);
    assert_eq!(
        m.node("HQ")
            .stats()
            .refused_by_us
            .get("duplicate_cluster_id"),
        Some(&1)
    );
}

#[test]
fn a_cluster_with_the_hubs_own_id_is_refused() {
    let mut m = Mesh::new();
    m.hub("HQ", None);
    let mut c = Mesh::config("HQ", Role::Spoke, Some("HQ"));
    c.identity.addresses = vec!["HQ2".into()];
    c.identity.cluster_name = "other.example.com".into();
    m.add(c);
    m.run();
    let r = refusals(&m, "HQ2");
    assert_eq!(r[0].0, RefuseReason::DuplicateClusterId);
    assert!(r[0].1);
}

#[test]
fn joining_through_a_spoke_is_refused_as_not_a_hub() {
    let mut m = Mesh::new();
    m.hub("HQ", None).spoke("BR", "HQ");
    m.run();
    let mut c = Mesh::config("XX", Role::Spoke, Some("BR"));
    c.reconnect_min = std::time::Duration::from_secs(1);
    m.add(c);
    m.run();
    let r = refusals(&m, "XX");
    assert_eq!(r[0].0, RefuseReason::NotAHub);
    assert!(r[0].2.contains("cluster BR is a spoke"), "{}", r[0].2);
    assert_eq!(m.links_of("XX"), Vec::<String>::new());
}
