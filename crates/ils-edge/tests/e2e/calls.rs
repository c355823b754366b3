//! Calls through the lab's edges (issue 3 item 7): each test starts a fresh lab.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::lab::{
    BR_EDGE, BR_PHONES, HQ_EDGE, HQ_PHONES, HQ_UAS_IP, Lab, Uac, metric, prerequisites, sc,
    scenario,
};

/// How long BR may take to learn HQ's URIs after both edges start.
const LEARN: Duration = Duration::from_secs(20);

const ALICE: &str = "alice@hq.example.com";

/// A lab with both edges, `uas` answering at HQ, and BR having learned Alice (proved by
/// `probe` completing from the BR phones).
fn lab_with_alice_learned(uas: &str, probe: &Uac) -> Lab {
    let mut lab = Lab::new();
    lab.uas(uas, HQ_UAS_IP);
    lab.start_both();
    lab.call_until_ok(probe, LEARN);
    lab
}

#[test]
fn basic_call_from_br_phones_to_alice_over_udp_completes_through_both_edges() {
    if !prerequisites() {
        return;
    }
    let uac = Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE);
    let mut lab = lab_with_alice_learned(sc::UAS_ANSWER, &uac);
    let many = uac.calls(20, 20);
    let out = lab.call(&many);
    assert!(out.all_ok(20), "{out}");
    // The calls' transactions linger at HQ to absorb retransmissions (RFC 3261 Timer J,
    // RFC 6026 Timers L and M), each with its timer queued; the admin API shows them.
    let hq = "127.0.1.1:9090";
    assert!(metric(hq, "ils_edge_sip_transactions{side=\"server\"}") >= 40.0);
    assert!(metric(hq, "ils_edge_sip_transactions{side=\"client\"}") >= 20.0);
    assert!(metric(hq, "ils_edge_sip_timer_entries") >= 60.0);
    assert_eq!(metric(hq, "ils_edge_sip_transactions_pending"), 0.0);
}

#[test]
fn basic_call_over_tcp_completes_through_both_edges() {
    if !prerequisites() {
        return;
    }
    let mut lab = lab_with_alice_learned(
        sc::UAS_ANSWER,
        &Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE),
    );
    let uac = Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE)
        .tcp()
        .calls(10, 10);
    let out = lab.call(&uac);
    assert!(out.all_ok(10), "{out}");
}

#[test]
fn unknown_uri_answers_404() {
    if !prerequisites() {
        return;
    }
    let mut lab = lab_with_alice_learned(
        sc::UAS_ANSWER,
        &Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE),
    );
    for (target, phones) in [(BR_EDGE, BR_PHONES), (HQ_EDGE, HQ_PHONES)] {
        let out = lab
            .call(&Uac::new(sc::EXPECT_404, "nobody@hq.example.com", phones, target).calls(3, 10));
        assert!(out.all_ok(3), "via {target}: {out}");
    }
}

#[test]
fn call_from_unconfigured_source_answers_403() {
    if !prerequisites() {
        return;
    }
    let mut lab = Lab::new();
    lab.uas(sc::UAS_ANSWER, HQ_UAS_IP);
    lab.start(crate::lab::Edge::Hq);
    let out = lab
        .call(&Uac::new(sc::EXPECT_403, "carol@hq.example.com", "127.0.9.9", HQ_EDGE).calls(3, 10));
    assert!(out.all_ok(3), "{out}");
}

#[test]
fn cancel_before_answer_returns_487_to_the_caller() {
    if !prerequisites() {
        return;
    }
    let uac = Uac::new(sc::CANCEL, ALICE, BR_PHONES, BR_EDGE);
    let mut lab = lab_with_alice_learned(sc::UAS_RING_CANCEL, &uac);
    let out = lab.call(&uac.calls(5, 5));
    assert!(out.all_ok(5), "{out}");
}

#[test]
fn busy_486_from_the_callee_is_passed_back() {
    if !prerequisites() {
        return;
    }
    let uac = Uac::new(sc::EXPECT_486, ALICE, BR_PHONES, BR_EDGE);
    let mut lab = lab_with_alice_learned(sc::UAS_BUSY, &uac);
    let out = lab.call(&uac.calls(5, 10));
    assert!(out.all_ok(5), "{out}");
}

#[test]
fn failover_to_the_next_destination_when_the_first_is_dead() {
    if !prerequisites() {
        return;
    }
    let mut lab = Lab::new();
    // Trunk hq-pbx: a dead destination first (nothing listens on 127.0.1.11), then the UAS.
    lab.edit("hq.toml", |t| {
        let old = "destinations = [\"127.0.1.10:5060\"]";
        assert!(t.contains(old), "hq.toml no longer has {old}");
        t.replacen(
            old,
            "destinations = [\"127.0.1.11:5060\", \"127.0.1.10:5060\"]",
            1,
        )
    });
    lab.uas(sc::UAS_ANSWER, HQ_UAS_IP);
    lab.start(crate::lab::Edge::Hq);
    // invite_timeout = "1s" in the lab: each call fails over in about a second, not 32.
    let uac = Uac::new(sc::BASIC_CALL, ALICE, HQ_PHONES, HQ_EDGE)
        .calls(3, 3)
        .timeout(Duration::from_secs(20));
    let out = lab.call(&uac);
    assert!(out.all_ok(3), "{out}");
}

#[test]
fn max_forwards_zero_answers_483() {
    if !prerequisites() {
        return;
    }
    let mut lab = lab_with_alice_learned(
        sc::UAS_ANSWER,
        &Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE),
    );
    let out = lab.call(&Uac::new(sc::EXPECT_483, ALICE, BR_PHONES, BR_EDGE).calls(3, 10));
    assert!(out.all_ok(3), "{out}");
}

#[test]
fn malformed_burst_is_answered_400_while_calls_keep_completing() {
    if !prerequisites() {
        return;
    }
    let uac = Uac::new(sc::BASIC_CALL, ALICE, BR_PHONES, BR_EDGE);
    let mut lab = lab_with_alice_learned(sc::UAS_ANSWER, &uac);
    // The torture burst (every answerable kind must get its 400) runs while 100 calls go
    // through both edges; then the edges still serve.
    let burst = lab.spawn(
        Command::new("python3")
            .arg(scenario(sc::MALFORMED))
            .args([
                "--target", BR_EDGE, "--bind", BR_PHONES, "--rounds", "50", "--rate", "500",
                "--wait", "3",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let calls = uac.clone().calls(100, 25).timeout(Duration::from_secs(40));
    let out = lab.call(&calls);
    let (status, summary) = lab.wait(burst, Duration::from_secs(60));
    assert!(out.all_ok(100), "calls during the burst: {out}");
    assert!(
        status.success(),
        "malformed burst not all answered 400: {summary}"
    );
    let after = lab.call(&uac.calls(5, 10));
    assert!(after.all_ok(5), "after the burst: {after}");
}
