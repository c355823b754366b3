//! The replication network end to end (issue 4, "Done when"): URIs learned by BR from HQ route
//! calls through both edges, follow directory changes at once, and survive HQ's absence.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use crate::lab::{BR_EDGE, BR_PHONES, Edge, HQ_UAS_IP, Lab, Uac, metric, prerequisites, sc};

const LEARN: Duration = Duration::from_secs(20);
/// Issue 4: a directory change routes (or stops routing) from BR within one second.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How long the polls look before giving up (longer than the bound, to report the time).
const POLL: Duration = Duration::from_secs(5);

fn basic(uri: &str) -> Uac {
    Uac::new(sc::BASIC_CALL, uri, BR_PHONES, BR_EDGE).timeout(Duration::from_secs(5))
}

fn expect(scenario: &str, uri: &str) -> Uac {
    Uac::new(scenario, uri, BR_PHONES, BR_EDGE).timeout(Duration::from_secs(10))
}

#[test]
fn uri_added_at_hq_routes_from_br_and_a_removed_one_answers_404_within_one_second() {
    if !prerequisites() {
        return;
    }
    let mut lab = Lab::new();
    lab.uas(sc::UAS_ANSWER, HQ_UAS_IP);
    lab.start_both();
    lab.call_until_ok(&basic("alice@hq.example.com"), LEARN);
    let erin = "erin@hq.example.com";
    let out = lab.call(&expect(sc::EXPECT_404, erin));
    assert!(out.all_ok(1), "erin before she exists: {out}");

    // Add Erin at HQ (DN 1003 matches route pattern 1XXX) and reload.
    let csv = lab.path().join("hq-directory.csv");
    let before = std::fs::read_to_string(&csv).expect("hq-directory.csv");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&csv)
        .expect("open hq-directory.csv");
    if !before.ends_with('\n') {
        writeln!(f).expect("write");
    }
    writeln!(f, "{erin},Directory URI,1003,true").expect("write");
    drop(f);
    lab.reload(Edge::Hq);
    let added = lab.call_until_ok(&basic(erin), POLL);
    eprintln!("added URI routes from BR after {added:?}");

    // Remove her again.
    std::fs::write(&csv, &before).expect("restore hq-directory.csv");
    lab.reload(Edge::Hq);
    let removed = lab.call_until_ok(&expect(sc::EXPECT_404, erin), POLL);
    eprintln!("removed URI answers 404 from BR after {removed:?}");

    assert!(
        added < PROPAGATION,
        "added URI took {added:?} to route from BR"
    );
    assert!(
        removed < PROPAGATION,
        "removed URI took {removed:?} to answer 404 from BR"
    );
}

#[test]
fn with_hq_stopped_br_keeps_learned_uris_across_its_restart_and_answers_503_then_recovers() {
    if !prerequisites() {
        return;
    }
    let mut lab = Lab::new();
    lab.uas(sc::UAS_ANSWER, HQ_UAS_IP);
    lab.start_both();
    let alice = "alice@hq.example.com";
    lab.call_until_ok(&basic(alice), LEARN);

    // HQ goes away: BR still knows Alice, so the call fails as a trunk failure, not unknown.
    let status = lab.stop(Edge::Hq);
    assert!(
        status.success(),
        "HQ edge exit status after SIGTERM: {status}"
    );
    let out = lab.call(&expect(sc::EXPECT_503, alice));
    assert!(out.all_ok(1), "alice with HQ down: {out}");
    let out = lab.call(&expect(sc::EXPECT_404, "nobody@hq.example.com"));
    assert!(out.all_ok(1), "an unknown URI with HQ down: {out}");

    // BR restarts while HQ is still down: its learned entries come back from its database.
    let status = lab.stop(Edge::Br);
    assert!(
        status.success(),
        "BR edge exit status after SIGTERM: {status}"
    );
    lab.start(Edge::Br);
    let out = lab.call(&expect(sc::EXPECT_503, alice));
    assert!(
        out.all_ok(1),
        "alice after BR's restart with HQ down: {out}"
    );

    // While HQ is down its directory gains one URI. HQ comes back: calls complete again, and
    // the resynchronisation carries that one record, not the whole directory.
    lab.edit("hq-directory.csv", |s| {
        s + "erin@hq.example.com,Directory URI,1005,true\n"
    });
    lab.start(Edge::Hq);
    let back = lab.call_until_ok(&basic(alice), LEARN);
    eprintln!("calls complete again {back:?} after HQ restarted");
    let out = lab.call(&basic(alice).calls(10, 10));
    assert!(out.all_ok(10), "after HQ restarted: {out}");
    let start = std::time::Instant::now();
    while metric("127.0.2.1:9090", "ils_edge_ils_records_received_total") < 1.0 {
        assert!(start.elapsed() < LEARN, "BR never received the new record");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        metric("127.0.2.1:9090", "ils_edge_ils_records_received_total"),
        1.0,
        "BR resynchronises with the one change, not the directory"
    );
    assert_eq!(
        metric("127.0.1.1:9090", "ils_edge_ils_records_sent_total"),
        1.0,
        "HQ sends only the one change after its restart"
    );
}
