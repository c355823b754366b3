use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

const CS: UriLookupPolicy = UriLookupPolicy::CaseSensitive;

fn uri(s: &str) -> DirectoryUri {
    DirectoryUri::parse(s, CS).unwrap()
}

fn cluster(s: &str) -> ClusterId {
    ClusterId::new(s).unwrap()
}

fn upsert(u: &str, route: &str, version: u64) -> LearnedChange {
    LearnedChange::Upsert {
        uri: uri(u),
        route_string: RouteString::new(route).unwrap(),
        version,
    }
}

fn remove(u: &str, version: u64) -> LearnedChange {
    LearnedChange::Remove {
        uri: uri(u),
        version,
    }
}

fn batch(origin: &str, changes: Vec<LearnedChange>) -> LearnedBatch {
    LearnedBatch {
        origin: cluster(origin),
        changes,
    }
}

fn table(policy: DuplicatePolicy) -> LearnedTable {
    LearnedTable::new(100, policy, CS)
}

fn origin_of(t: &LearnedTable, u: &str) -> Option<String> {
    t.get(&uri(u)).map(|e| e.origin.as_str().to_owned())
}

#[test]
fn learns_and_looks_up() {
    let t = table(DuplicatePolicy::FirstLearned);
    let r = t.apply(batch(
        "HQ",
        vec![upsert("alice@hq.example.com", "hq.route", 1)],
    ));
    assert_eq!(r.upserted, 1);
    let e = t.get(&uri("alice@HQ.example.com")).unwrap();
    assert_eq!(e.route_string.as_str(), "hq.route");
    assert_eq!(e.origin.as_str(), "HQ");
    assert_eq!(e.version, 1);
    assert_eq!(t.len(), 1);
    assert!(t.get(&uri("bob@hq.example.com")).is_none());
}

#[test]
fn stale_versions_are_ignored_and_apply_is_idempotent() {
    let t = table(DuplicatePolicy::FirstLearned);
    let b = batch(
        "HQ",
        vec![
            upsert("alice@hq.example.com", "hq.route", 5),
            upsert("bob@hq.example.com", "hq.route", 6),
        ],
    );
    assert_eq!(t.apply(b.clone()).upserted, 2);
    let again = t.apply(b);
    assert_eq!((again.upserted, again.stale), (0, 2));
    // An older version of a newer claim changes nothing.
    let old = t.apply(batch(
        "HQ",
        vec![upsert("alice@hq.example.com", "old.route", 4)],
    ));
    assert_eq!(old.stale, 1);
    assert_eq!(
        t.get(&uri("alice@hq.example.com"))
            .unwrap()
            .route_string
            .as_str(),
        "hq.route"
    );
    // A remove older than the claim is stale; a newer one removes.
    assert_eq!(
        t.apply(batch("HQ", vec![remove("bob@hq.example.com", 5)]))
            .stale,
        1
    );
    assert_eq!(
        t.apply(batch("HQ", vec![remove("bob@hq.example.com", 7)]))
            .removed,
        1
    );
    assert_eq!(
        t.apply(batch("HQ", vec![remove("bob@hq.example.com", 7)]))
            .stale,
        1
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn first_learned_wins_and_conflict_is_listed() {
    let t = table(DuplicatePolicy::FirstLearned);
    t.apply(batch(
        "BR",
        vec![upsert("alice@hq.example.com", "br.route", 1)],
    ));
    let r = t.apply(batch(
        "HQ",
        vec![upsert("alice@hq.example.com", "hq.route", 1)],
    ));
    assert_eq!((r.upserted, r.new_conflicts), (1, 1));
    assert_eq!(origin_of(&t, "alice@hq.example.com").as_deref(), Some("BR"));
    assert_eq!(t.len(), 1, "a contested URI counts once");
    assert_eq!(
        t.conflicts(),
        vec![Conflict {
            uri: uri("alice@hq.example.com"),
            winner: cluster("BR"),
            others: vec![cluster("HQ")],
        }]
    );
    // An update by the winner keeps it first; the loser's update does not take over.
    t.apply(batch(
        "HQ",
        vec![upsert("alice@hq.example.com", "hq2.route", 2)],
    ));
    assert_eq!(origin_of(&t, "alice@hq.example.com").as_deref(), Some("BR"));
    assert_eq!(
        t.entries_of(&cluster("HQ"))[0].route_string.as_str(),
        "hq2.route"
    );
}

#[test]
fn last_learned_takes_over() {
    let t = table(DuplicatePolicy::LastLearned);
    t.apply(batch(
        "BR",
        vec![upsert("alice@hq.example.com", "br.route", 1)],
    ));
    t.apply(batch(
        "HQ",
        vec![upsert("alice@hq.example.com", "hq.route", 1)],
    ));
    assert_eq!(origin_of(&t, "alice@hq.example.com").as_deref(), Some("HQ"));
    t.apply(batch(
        "BR",
        vec![upsert("alice@hq.example.com", "br.route", 2)],
    ));
    assert_eq!(origin_of(&t, "alice@hq.example.com").as_deref(), Some("BR"));
}

#[test]
fn lowest_cluster_id_wins() {
    let t = table(DuplicatePolicy::LowestClusterId);
    t.apply(batch(
        "ZZ",
        vec![upsert("alice@hq.example.com", "zz.route", 1)],
    ));
    t.apply(batch(
        "AA",
        vec![upsert("alice@hq.example.com", "aa.route", 1)],
    ));
    t.apply(batch(
        "MM",
        vec![upsert("alice@hq.example.com", "mm.route", 1)],
    ));
    let e = t.get(&uri("alice@hq.example.com")).unwrap();
    assert_eq!(
        (e.origin.as_str(), e.route_string.as_str()),
        ("AA", "aa.route")
    );
    let c = &t.conflicts()[0];
    assert_eq!(c.others, vec![cluster("ZZ"), cluster("MM")]);
}

#[test]
fn remove_withdraws_only_the_origins_claim_and_promotes_the_next() {
    let t = table(DuplicatePolicy::FirstLearned);
    t.apply(batch(
        "A",
        vec![upsert("alice@hq.example.com", "a.route", 1)],
    ));
    t.apply(batch(
        "B",
        vec![upsert("alice@hq.example.com", "b.route", 1)],
    ));
    t.apply(batch(
        "C",
        vec![upsert("alice@hq.example.com", "c.route", 1)],
    ));
    // A cluster that never claimed the URI cannot remove it.
    assert_eq!(
        t.apply(batch("D", vec![remove("alice@hq.example.com", 9)]))
            .stale,
        1
    );
    assert_eq!(
        t.apply(batch("A", vec![remove("alice@hq.example.com", 2)]))
            .removed,
        1
    );
    let e = t.get(&uri("alice@hq.example.com")).unwrap();
    assert_eq!(
        (e.origin.as_str(), e.route_string.as_str()),
        ("B", "b.route")
    );
    assert_eq!(t.conflicts()[0].others, vec![cluster("C")]);
    t.apply(batch("C", vec![remove("alice@hq.example.com", 2)]));
    assert!(t.conflicts().is_empty(), "one claim left is no conflict");
    assert_eq!(origin_of(&t, "alice@hq.example.com").as_deref(), Some("B"));
    t.apply(batch("B", vec![remove("alice@hq.example.com", 2)]));
    assert!(t.is_empty());
}

#[test]
fn cap_reached_refuses_new_uris_with_a_report() {
    let t = LearnedTable::new(2, DuplicatePolicy::FirstLearned, CS);
    let r = t.apply(batch(
        "HQ",
        vec![
            upsert("a@hq.example.com", "hq.route", 1),
            upsert("b@hq.example.com", "hq.route", 1),
            upsert("c@hq.example.com", "hq.route", 1),
        ],
    ));
    assert_eq!((r.upserted, r.refused_cap), (2, 1));
    assert!(t.cap_reached());
    assert_eq!(t.refused(), 1);
    assert_eq!(
        r.to_string(),
        "2 upserted, 0 removed, 0 stale, 1 refused (cap reached), 0 new conflicts"
    );
    // Updates of held URIs and second claims still apply at the cap.
    let r = t.apply(batch(
        "HQ",
        vec![upsert("a@hq.example.com", "hq2.route", 2)],
    ));
    assert_eq!(r.upserted, 1);
    let r = t.apply(batch("BR", vec![upsert("b@hq.example.com", "br.route", 1)]));
    assert_eq!((r.upserted, r.new_conflicts), (1, 1));
    // A removal makes room.
    t.apply(batch("HQ", vec![remove("a@hq.example.com", 3)]));
    assert!(!t.cap_reached());
    assert_eq!(
        t.apply(batch("HQ", vec![upsert("c@hq.example.com", "hq.route", 4)]))
            .upserted,
        1
    );
}

#[test]
fn entries_are_sorted_by_uri() {
    let t = table(DuplicatePolicy::FirstLearned);
    t.apply(batch(
        "HQ",
        vec![
            upsert("carol@hq.example.com", "hq.route", 1),
            upsert("alice@hq.example.com", "hq.route", 2),
        ],
    ));
    t.apply(batch(
        "BR",
        vec![upsert("bob@br.example.com", "br.route", 1)],
    ));
    let all: Vec<String> = t.entries().iter().map(|e| e.uri.to_string()).collect();
    assert_eq!(
        all,
        [
            "alice@hq.example.com",
            "bob@br.example.com",
            "carol@hq.example.com"
        ]
    );
    assert_eq!(t.entries_of(&cluster("HQ")).len(), 2);
    assert!(t.entries_of(&cluster("XX")).is_empty());
}

#[test]
fn case_insensitive_policy_folds_user_parts() {
    let t = LearnedTable::new(
        10,
        DuplicatePolicy::FirstLearned,
        UriLookupPolicy::CaseInsensitive,
    );
    t.apply(batch(
        "HQ",
        vec![upsert("Alice@hq.example.com", "hq.route", 1)],
    ));
    assert!(t.get(&uri("ALICE@hq.example.com")).is_some());
    assert_eq!(t.entries()[0].uri.as_str(), "alice@hq.example.com");
}

#[test]
fn readers_proceed_while_a_writer_applies() {
    let t = Arc::new(LearnedTable::new(
        100_000,
        DuplicatePolicy::FirstLearned,
        CS,
    ));
    t.apply(batch(
        "HQ",
        vec![upsert("fixed@hq.example.com", "hq.route", 1)],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
        std::thread::spawn(move || {
            let key = uri("fixed@hq.example.com");
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert!(
                    t.get(&key).is_some(),
                    "a held URI never disappears mid-batch"
                );
                reads += 1;
            }
            reads
        })
    };
    for round in 0..5u64 {
        let changes = (0..2_000)
            .map(|i| upsert(&format!("u{i}@br.example.com"), "br.route", round + 1))
            .collect();
        t.apply(batch("BR", changes));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(t.len(), 2_001);
}

#[test]
fn duplicate_policy_spellings() {
    for p in ["first-learned", "last-learned", "lowest-cluster-id"] {
        assert_eq!(p.parse::<DuplicatePolicy>().unwrap().as_str(), p);
    }
    assert!("first".parse::<DuplicatePolicy>().is_err());
    assert_eq!(DuplicatePolicy::default(), DuplicatePolicy::FirstLearned);
}
