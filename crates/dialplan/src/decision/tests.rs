//! The decision against LAB.md's two edges, and CUCM's closest-match rules.

use std::net::IpAddr;

use super::*;
use crate::ids::UriLookupPolicy;
use crate::pattern::{NumericPattern, SipPattern};
use crate::plan::{
    Destination, DialPlanBuilder, DialStringInterpretation, LocalUri, OptionsPing, PatternAction,
    Transport,
};
use crate::table::{DuplicatePolicy, LearnedBatch, LearnedChange};

const CS: UriLookupPolicy = UriLookupPolicy::CaseSensitive;
const DU: &str = "Directory URI";

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn trunk(n: &str, dest: &str, accepts: &[&str], css: &str) -> TrunkSpec {
    TrunkSpec {
        name: name(n),
        destinations: vec![Destination::parse(dest).unwrap()],
        transport: Transport::Udp,
        accepts: accepts
            .iter()
            .map(|a| crate::IpPattern::parse(a).unwrap())
            .collect(),
        inbound_css: name(css),
        dial_string: DialStringInterpretation::DigitsStarPlus,
        add_dest_route_string: false,
        route_on_dest_route_string: false,
        options_ping: OptionsPing::default(),
    }
}

fn route_to(t: &str) -> PatternAction {
    PatternAction::Route { trunk: name(t) }
}

/// LAB.md's dial plan of one edge: `site` is "hq" or "br", `peer` the other.
fn lab_builder(site: &str, peer: &str) -> DialPlanBuilder {
    let (me, other) = (
        if site == "hq" { 1 } else { 2 },
        if site == "hq" { 2 } else { 1 },
    );
    let mut b = DialPlanBuilder::new(CS);
    b.partition(name(DU)).unwrap();
    b.partition(name("onNetRemote")).unwrap();
    b.css(name("from-pbx"), vec![name(DU), name("onNetRemote")])
        .unwrap();
    b.css(name("from-edge"), vec![name(DU)]).unwrap();
    let pbx = format!("{site}-pbx");
    let to_peer = format!("to-{peer}");
    b.trunk(trunk(
        &pbx,
        &format!("127.0.{me}.10:5060"),
        &[&format!("127.0.{me}.10"), &format!("127.0.{me}.20")],
        "from-pbx",
    ))
    .unwrap();
    b.trunk(trunk(
        &to_peer,
        &format!("127.0.{other}.1:5060"),
        &[&format!("127.0.{other}.1")],
        "from-edge",
    ))
    .unwrap();
    b.sip_route_pattern(
        SipPattern::parse(&format!("{peer}.route")).unwrap(),
        name("onNetRemote"),
        route_to(&to_peer),
    )
    .unwrap();
    b.numeric_route_pattern(
        NumericPattern::parse("1XXX").unwrap(),
        name(DU),
        route_to(&pbx),
    )
    .unwrap();
    for (user, dn) in [("alice", "1001"), ("carol", "1002")] {
        b.directory_uri(LocalUri {
            uri: DirectoryUri::parse(&format!("{user}@{site}.example.com"), CS).unwrap(),
            partition: name(DU),
            directory_number: DirectoryNumber::new(dn).unwrap(),
            advertise: true,
        })
        .unwrap();
    }
    b
}

fn router(b: DialPlanBuilder) -> Router {
    Router::new(
        b.build(),
        Arc::new(LearnedTable::new(1000, DuplicatePolicy::FirstLearned, CS)),
    )
}

fn learn(r: &Router, origin: &str, user_host: &str, route: &str) {
    r.learned().apply(LearnedBatch {
        origin: ClusterId::new(origin).unwrap(),
        changes: vec![LearnedChange::Upsert {
            uri: DirectoryUri::parse(user_host, CS).unwrap(),
            route_string: RouteString::new(route).unwrap(),
            version: 1,
        }],
    });
}

fn req<'a>(from: Inbound<'a>, uri: &'a str) -> RouteRequest<'a> {
    let (user, host) = match uri.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, uri),
    };
    RouteRequest {
        from,
        user,
        host,
        dest_route_string: None,
    }
}

fn addr(s: &str) -> Inbound<'static> {
    Inbound::Address(s.parse::<IpAddr>().unwrap())
}

/// Decides and explains, checks both agree, and returns the decision and the trace text.
fn run(r: &Router, rq: &RouteRequest<'_>) -> (Decision, String) {
    let decision = r.decide(rq);
    let (explained, trace) = r.explain(rq);
    assert_eq!(decision, explained, "decide and explain disagree");
    (decision, trace.to_string())
}

#[test]
fn lab_hq_routes_alice_to_her_directory_number() {
    let hq = router(lab_builder("hq", "br"));
    let (d, trace) = run(&hq, &req(Inbound::Trunk("to-br"), "alice@hq.example.com"));
    let Decision::Local {
        partition,
        directory_number,
        pattern,
        trunk,
        ..
    } = &d
    else {
        panic!("expected local, got {d:?}\n{trace}");
    };
    assert_eq!(
        (
            partition.as_str(),
            directory_number.as_str(),
            pattern.as_str()
        ),
        (DU, "1001", "1XXX")
    );
    assert_eq!(trunk.name.as_str(), "hq-pbx");
    assert_eq!(d.kind(), "local");
    assert!(
        trace.contains("partition Directory URI holds the URI"),
        "{trace}"
    );
}

#[test]
fn lab_br_learns_alice_and_routes_on_hq_route() {
    let br = router(lab_builder("br", "hq"));
    let call = req(Inbound::Trunk("br-pbx"), "alice@hq.example.com");
    let (d, trace) = run(&br, &call);
    assert_eq!(d, Decision::NotFound, "{trace}");
    assert_eq!(d.status(), Some(404));
    learn(&br, "HQ", "alice@hq.example.com", "hq.route");
    let (d, trace) = run(&br, &call);
    let Decision::Learned {
        route_string,
        origin,
        partition,
        pattern,
        trunk,
        ..
    } = &d
    else {
        panic!("expected learned, got {d:?}\n{trace}");
    };
    assert_eq!(route_string.as_str(), "hq.route");
    assert_eq!(origin.as_ref().map(ClusterId::as_str), Some("HQ"));
    assert_eq!(
        (partition.as_str(), pattern.as_str()),
        ("onNetRemote", "hq.route")
    );
    assert_eq!(trunk.name.as_str(), "to-hq");
    assert!(trace.contains("learned from cluster HQ"), "{trace}");
    // The phones' address finds trunk br-pbx by its accepts.
    assert_eq!(
        br.decide(&req(addr("127.0.2.20"), "alice@hq.example.com"))
            .kind(),
        "learned"
    );
}

#[test]
fn unknown_source_is_forbidden_unless_a_default_css_is_set() {
    let hq = router(lab_builder("hq", "br"));
    let (d, trace) = run(&hq, &req(addr("127.0.9.9"), "carol@hq.example.com"));
    assert_eq!((d.kind(), d.status()), ("forbidden", Some(403)));
    assert!(
        trace.contains("no trunk matches source address 127.0.9.9"),
        "{trace}"
    );
    assert_eq!(
        hq.decide(&req(Inbound::Trunk("nope"), "carol@hq.example.com")),
        Decision::Forbidden
    );
    let mut b = lab_builder("hq", "br");
    b.default_inbound_css(Some(name("from-edge"))).unwrap();
    let hq = router(b);
    let (d, trace) = run(&hq, &req(addr("127.0.9.9"), "carol@hq.example.com"));
    assert_eq!(d.kind(), "local", "{trace}");
    assert!(trace.contains("default inbound calling search space from-edge"));
}

#[test]
fn unknown_uri_is_not_found() {
    let hq = router(lab_builder("hq", "br"));
    let d = hq.decide(&req(Inbound::Trunk("hq-pbx"), "nobody@hq.example.com"));
    assert_eq!(d, Decision::NotFound);
}

#[test]
fn uri_in_a_partition_outside_the_css_is_not_found() {
    let mut b = lab_builder("hq", "br");
    b.directory_uri(LocalUri {
        uri: DirectoryUri::parse("dave@hq.example.com", CS).unwrap(),
        partition: name("onNetRemote"),
        directory_number: DirectoryNumber::new("1003").unwrap(),
        advertise: false,
    })
    .unwrap();
    let hq = router(b);
    // from-edge holds only Directory URI.
    let (d, trace) = run(&hq, &req(Inbound::Trunk("to-br"), "dave@hq.example.com"));
    assert_eq!(d, Decision::NotFound, "{trace}");
    assert!(
        trace.contains("only outside the calling search space, in onNetRemote"),
        "{trace}"
    );
    // from-pbx holds both, so the phones reach dave.
    let d = hq.decide(&req(Inbound::Trunk("hq-pbx"), "dave@hq.example.com"));
    assert_eq!(d.kind(), "local");
}

#[test]
fn local_beats_learned() {
    let hq = router(lab_builder("hq", "br"));
    learn(&hq, "BR", "alice@hq.example.com", "br.route");
    let d = hq.decide(&req(Inbound::Trunk("hq-pbx"), "alice@hq.example.com"));
    assert_eq!(d.kind(), "local");
}

#[test]
fn first_partition_of_the_css_holding_the_uri_wins() {
    let mut b = lab_builder("hq", "br");
    b.directory_uri(LocalUri {
        uri: DirectoryUri::parse("alice@hq.example.com", CS).unwrap(),
        partition: name("onNetRemote"),
        directory_number: DirectoryNumber::new("1999").unwrap(),
        advertise: false,
    })
    .unwrap();
    let hq = router(b);
    let d = hq.decide(&req(Inbound::Trunk("hq-pbx"), "alice@hq.example.com"));
    let Decision::Local {
        directory_number, ..
    } = d
    else {
        panic!("expected local");
    };
    assert_eq!(directory_number.as_str(), "1001");
}

#[test]
fn local_directory_number_without_pattern_is_not_found_with_reason() {
    let mut b = lab_builder("hq", "br");
    b.directory_uri(LocalUri {
        uri: DirectoryUri::parse("erin@hq.example.com", CS).unwrap(),
        partition: name(DU),
        directory_number: DirectoryNumber::new("5001").unwrap(),
        advertise: true,
    })
    .unwrap();
    let hq = router(b);
    let (d, trace) = run(&hq, &req(Inbound::Trunk("hq-pbx"), "erin@hq.example.com"));
    assert_eq!(d, Decision::NotFound);
    assert!(
        trace.contains("no route pattern matches directory number 5001"),
        "{trace}"
    );
}

/// Partitions P1 and P2, CSS [P1, P2], trunks a, b, c; one caller trunk `in`.
fn two_partitions() -> DialPlanBuilder {
    let mut b = DialPlanBuilder::new(CS);
    for p in ["P1", "P2"] {
        b.partition(name(p)).unwrap();
    }
    b.css(name("css"), vec![name("P1"), name("P2")]).unwrap();
    b.trunk(trunk("in", "10.0.0.1:5060", &["10.0.0.0/8"], "css"))
        .unwrap();
    for t in ["a", "b", "c"] {
        b.trunk(trunk(t, "10.9.9.9:5060", &[], "css")).unwrap();
    }
    b
}

fn numeric(b: &mut DialPlanBuilder, p: &str, part: &str, t: &str) {
    b.numeric_route_pattern(NumericPattern::parse(p).unwrap(), name(part), route_to(t))
        .unwrap();
}

fn sip(b: &mut DialPlanBuilder, p: &str, part: &str, t: &str) {
    b.sip_route_pattern(SipPattern::parse(p).unwrap(), name(part), route_to(t))
        .unwrap();
}

fn winner(r: &Router, uri: &str) -> (String, String) {
    let d = r.decide(&req(Inbound::Trunk("in"), uri));
    (
        d.pattern().unwrap_or("-").to_owned(),
        d.trunk().map_or("-".to_owned(), |t| t.name.to_string()),
    )
}

#[test]
fn closest_numeric_match_wins_over_css_order() {
    // CUCM: 1234 beats 121X beats 12XX beats 1XXX, wherever they sit in the CSS.
    let mut b = two_partitions();
    numeric(&mut b, "1XXX", "P1", "a");
    numeric(&mut b, "12XX", "P2", "b");
    numeric(&mut b, "121X", "P2", "c");
    numeric(&mut b, "1234", "P2", "a");
    let r = router(b);
    assert_eq!(winner(&r, "1234@x.com"), ("1234".into(), "a".into()));
    assert_eq!(winner(&r, "1214@x.com"), ("121X".into(), "c".into()));
    assert_eq!(winner(&r, "1255@x.com"), ("12XX".into(), "b".into()));
    assert_eq!(winner(&r, "1555@x.com"), ("1XXX".into(), "a".into()));
    let (d, trace) = run(&r, &req(Inbound::Trunk("in"), "1214@x.com"));
    assert_eq!(d.kind(), "number");
    assert!(
        trace.contains("winner 121X in P2: most specific of 3 matches"),
        "{trace}"
    );
}

#[test]
fn css_order_breaks_ties() {
    let mut b = two_partitions();
    numeric(&mut b, "12XX", "P2", "b");
    numeric(&mut b, "1[2]XX", "P1", "a");
    sip(&mut b, "*.route", "P2", "b");
    sip(&mut b, "*.route", "P1", "a");
    let r = router(b);
    assert_eq!(winner(&r, "1234@x.com"), ("1[2]XX".into(), "a".into()));
    assert_eq!(winner(&r, "hq.route"), ("*.route".into(), "a".into()));
    let (_, trace) = run(&r, &req(Inbound::Trunk("in"), "1234@x.com"));
    assert!(
        trace.contains("first in calling search space order"),
        "{trace}"
    );
}

#[test]
fn exact_domain_beats_wildcard_in_an_earlier_partition() {
    // CUCM: hq.route beats *.route.
    let mut b = two_partitions();
    sip(&mut b, "*.route", "P1", "a");
    sip(&mut b, "*", "P1", "c");
    sip(&mut b, "hq.route", "P2", "b");
    sip(&mut b, "rtp-ccm[1-5].example.com", "P2", "b");
    let r = router(b);
    assert_eq!(winner(&r, "HQ.Route"), ("hq.route".into(), "b".into()));
    assert_eq!(winner(&r, "br.route"), ("*.route".into(), "a".into()));
    assert_eq!(
        winner(&r, "rtp-ccm3.example.com"),
        ("rtp-ccm[1-5].example.com".into(), "b".into())
    );
    assert_eq!(winner(&r, "other.example.net"), ("*".into(), "c".into()));
    // A learned URI's route string goes through the same patterns.
    learn(&r, "HQ", "alice@hq.example.com", "hq.route");
    let d = r.decide(&req(Inbound::Trunk("in"), "alice@hq.example.com"));
    assert_eq!(
        (d.kind(), d.pattern(), d.partition().map(Name::as_str)),
        ("learned", Some("hq.route"), Some("P2"))
    );
}

#[test]
fn ip_hosts_route_by_longest_prefix() {
    let mut b = two_partitions();
    sip(&mut b, "192.0.2.0/24", "P1", "a");
    sip(&mut b, "192.0.2.7", "P2", "b");
    sip(&mut b, "2001:db8::/32", "P2", "c");
    let r = router(b);
    assert_eq!(winner(&r, "192.0.2.7"), ("192.0.2.7".into(), "b".into()));
    assert_eq!(
        winner(&r, "bob@192.0.2.8"),
        ("192.0.2.0/24".into(), "a".into())
    );
    assert_eq!(
        winner(&r, "[2001:db8::5]"),
        ("2001:db8::/32".into(), "c".into())
    );
    assert_eq!(
        r.decide(&req(Inbound::Trunk("in"), "198.51.100.1")),
        Decision::NotFound
    );
}

#[test]
fn blocking_pattern_answers_its_status() {
    let mut b = two_partitions();
    numeric(&mut b, "9!", "P2", "a");
    b.numeric_route_pattern(
        NumericPattern::parse("900XXXXXXX").unwrap(),
        name("P2"),
        PatternAction::Block { status: 403 },
    )
    .unwrap();
    b.sip_route_pattern(
        SipPattern::parse("spam.example.com").unwrap(),
        name("P1"),
        PatternAction::Block { status: 488 },
    )
    .unwrap();
    let r = router(b);
    let d = r.decide(&req(Inbound::Trunk("in"), "9005551234@x.com"));
    assert_eq!(
        (d.kind(), d.status(), d.pattern()),
        ("blocked", Some(403), Some("900XXXXXXX"))
    );
    assert_eq!(
        r.decide(&req(Inbound::Trunk("in"), "9015551234@x.com"))
            .kind(),
        "number"
    );
    assert_eq!(
        r.decide(&req(Inbound::Trunk("in"), "spam.example.com"))
            .status(),
        Some(488)
    );
}

#[test]
fn dial_string_interpretation_classifies_the_user_part() {
    let mut b = two_partitions();
    numeric(&mut b, "+1408XXXXXXX", "P1", "a");
    numeric(&mut b, "1A", "P1", "b");
    sip(&mut b, "x.com", "P1", "c");
    let mut always = trunk("uri-only", "10.0.0.2:5060", &[], "css");
    always.dial_string = DialStringInterpretation::AlwaysUri;
    b.trunk(always).unwrap();
    let mut abcd = trunk("abcd", "10.0.0.3:5060", &[], "css");
    abcd.dial_string = DialStringInterpretation::DigitsAbcdStarPlus;
    b.trunk(abcd).unwrap();
    let r = router(b);
    // An escaped `+` still reads as a number.
    let d = r.decide(&req(Inbound::Trunk("in"), "%2B14085550100@x.com"));
    assert_eq!((d.kind(), d.pattern()), ("number", Some("+1408XXXXXXX")));
    // always-uri: digits are a URI; not local nor learned, so the host routes.
    let d = r.decide(&req(Inbound::Trunk("uri-only"), "+14085550100@x.com"));
    assert_eq!((d.kind(), d.pattern()), ("domain", Some("x.com")));
    // A-D are digits only for digits-abcd-star-plus.
    assert_eq!(
        r.decide(&req(Inbound::Trunk("abcd"), "1a@x.com")).pattern(),
        Some("1A")
    );
    assert_eq!(
        r.decide(&req(Inbound::Trunk("in"), "1a@x.com")).kind(),
        "domain"
    );
    // An unmatched number is not found; it does not fall back to the host.
    assert_eq!(
        r.decide(&req(Inbound::Trunk("in"), "5555@x.com")),
        Decision::NotFound
    );
}

#[test]
fn dest_route_string_is_honoured_only_where_configured() {
    let mut b = lab_builder("br", "hq");
    let mut sbc = trunk("sbc", "10.0.0.9:5060", &["10.0.0.9"], "from-pbx");
    sbc.route_on_dest_route_string = true;
    b.trunk(sbc).unwrap();
    let br = router(b);
    let mut call = req(Inbound::Trunk("sbc"), "zoe@elsewhere.example.com");
    call.dest_route_string = Some("<sip:HQ.route>");
    let (d, trace) = run(&br, &call);
    let Decision::Learned {
        origin,
        route_string,
        trunk,
        ..
    } = &d
    else {
        panic!("expected learned, got {d:?}\n{trace}");
    };
    assert_eq!(
        (origin, route_string.as_str(), trunk.name.as_str()),
        (&None, "hq.route", "to-hq")
    );
    call.from = Inbound::Trunk("br-pbx");
    let (d, trace) = run(&br, &call);
    assert_eq!(d, Decision::NotFound);
    assert!(
        trace.contains("X-cisco-dest-route-string <sip:HQ.route>: ignored"),
        "{trace}"
    );
}

#[test]
fn unmatched_route_string_falls_through_to_the_host() {
    let br = router(lab_builder("br", "hq"));
    learn(&br, "XX", "zed@hq.example.com", "xx.route");
    let (d, trace) = run(&br, &req(Inbound::Trunk("br-pbx"), "zed@hq.example.com"));
    assert_eq!(d, Decision::NotFound);
    assert!(
        trace.contains("no route pattern matches route string xx.route"),
        "{trace}"
    );
    assert!(
        trace.contains("no route pattern matches host hq.example.com"),
        "{trace}"
    );
}

#[test]
fn learned_conflict_shows_in_the_trace() {
    let br = router(lab_builder("br", "hq"));
    learn(&br, "HQ", "alice@hq.example.com", "hq.route");
    learn(&br, "XX", "alice@hq.example.com", "xx.route");
    let (d, trace) = run(&br, &req(Inbound::Trunk("br-pbx"), "alice@hq.example.com"));
    assert_eq!(d.kind(), "learned");
    assert!(
        trace.contains("claimed by several clusters: HQ wins over XX"),
        "{trace}"
    );
}

#[test]
fn replace_plan_applies_to_the_next_decision() {
    let hq = router(lab_builder("hq", "br"));
    let call = req(Inbound::Trunk("hq-pbx"), "alice@hq.example.com");
    assert_eq!(hq.decide(&call).kind(), "local");
    let mut b = lab_builder("hq", "br");
    b.default_inbound_css(None).unwrap();
    let mut empty = DialPlanBuilder::new(CS);
    empty.partition(name(DU)).unwrap();
    hq.replace_plan(empty.build());
    assert_eq!(hq.decide(&call), Decision::Forbidden);
    hq.replace_plan(b.build());
    assert_eq!(hq.decide(&call).kind(), "local");
    assert_eq!(hq.plan().trunks().len(), 2);
}

#[test]
fn trunk_for_source_prefers_the_longest_prefix() {
    let mut b = two_partitions();
    b.trunk(trunk("exact", "10.0.0.5:5060", &["10.0.0.5"], "css"))
        .unwrap();
    let plan = b.build();
    let by = |a: &str| {
        plan.trunk_for_source(a.parse().unwrap())
            .map(|t| t.name.to_string())
    };
    assert_eq!(by("10.0.0.5").as_deref(), Some("exact"));
    assert_eq!(by("10.0.0.6").as_deref(), Some("in"));
    assert_eq!(by("::ffff:10.0.0.5").as_deref(), Some("exact"));
    assert_eq!(by("11.0.0.1"), None);
}
