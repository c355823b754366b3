//! Durability in the sans-IO node: acknowledgements wait for the disk, own records are sent
//! only once written, and a restored node resumes from its positions.

use dialplan::Role;

use super::mesh::{Mesh, route, uri};

fn pending(m: &Mesh, at: &str, peer: &str) -> u64 {
    let now = m.now;
    m.nodes[at]
        .node
        .peers(now)
        .iter()
        .find(|p| p.cluster_id.as_str() == peer)
        .map_or(0, |p| p.pending_records)
}

#[test]
fn records_are_acknowledged_only_once_written_and_resumed_from_disk_after_a_crash() {
    let mut m = Mesh::new();
    m.hub("HQ", None);
    let mut br = Mesh::config("BR", Role::Spoke, Some("HQ"));
    br.durable = true;
    m.add(br.clone());
    m.run();
    m.advertise("HQ", &["alice", "bob", "carol"]);
    // BR applied them (its table has them) but acknowledged nothing: nothing is on disk.
    assert_eq!(m.learned("BR").len(), 3);
    assert_eq!(pending(&m, "HQ", "BR"), 3);
    let batch = m.node("BR").take_durable().expect("a batch to write");
    assert_eq!(batch.origins.len(), 1);
    assert_eq!(batch.origins[0].changed.len(), 3);
    assert_eq!(batch.origins[0].position, 3);
    assert!(
        m.node("BR").take_durable().is_none(),
        "one batch in flight at a time"
    );

    // A crash now: the restarted BR (from an empty disk) gets all three again.
    m.kill("BR");
    m.add(br.clone());
    m.run();
    assert_eq!(m.learned("BR").len(), 3);
    let batch = m.node("BR").take_durable().expect("batch");
    let now = m.now;
    m.node("BR").persisted(now, batch.ticket);
    m.run();
    assert_eq!(pending(&m, "HQ", "BR"), 0, "acknowledged once written");

    // A restart from that disk: positions restored, so only the change is sent.
    m.kill("BR");
    m.advertise("HQ", &["alice", "bob", "carol", "dave"]);
    m.add(br);
    let now = m.now;
    for o in &batch.origins {
        m.node("BR")
            .restore_position(&o.origin, o.position, o.gc_floor);
        m.node("BR")
            .restore_learned(now, &o.origin, o.changed.clone());
    }
    assert_eq!(m.learned("BR").len(), 3, "routes from disk before any link");
    m.log.clear();
    m.run();
    assert_eq!(m.records_sent("HQ", "BR"), 1);
    assert_eq!(m.learned("BR").len(), 4);
}

#[test]
fn own_records_are_sent_only_once_written() {
    let mut m = Mesh::new();
    m.hub("HQ", None);
    let mut br = Mesh::config("BR", Role::Spoke, Some("HQ"));
    br.durable = true;
    m.add(br);
    m.run();
    let now = m.now;
    m.node("BR")
        .advertise(now, [(uri("bob", "BR"), route("BR"))]);
    m.run();
    assert!(m.learned("HQ").is_empty(), "not on BR's disk yet");
    let batch = m.node("BR").take_durable().expect("batch");
    assert_eq!(batch.own.len(), 1);
    assert_eq!(batch.own_version, 1);
    m.node("BR").persisted(now, batch.ticket);
    m.run();
    assert_eq!(m.learned("HQ").len(), 1);
}
