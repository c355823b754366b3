//! Property tests: the indexed pattern search picks what a brute-force search over every
//! pattern picks (greatest specificity; among equals, the earliest partition of the CSS).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::ids::UriLookupPolicy;
use crate::pattern::{NumericPattern, SipPattern, Specificity};
use crate::plan::{
    Destination, DialPlanBuilder, DialStringInterpretation, OptionsPing, PatternAction, Transport,
};
use crate::table::DuplicatePolicy;

const PARTITIONS: [&str; 3] = ["P0", "P1", "P2"];

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn router(patterns: &[(String, usize)], numeric: bool) -> Router {
    let mut b = DialPlanBuilder::new(UriLookupPolicy::CaseSensitive);
    for p in PARTITIONS {
        b.partition(name(p)).unwrap();
    }
    b.css(name("css"), PARTITIONS.map(name).to_vec()).unwrap();
    b.trunk(TrunkSpec {
        name: name("t"),
        destinations: vec![Destination::parse("10.0.0.1:5060").unwrap()],
        transport: Transport::Udp,
        accepts: vec![],
        inbound_css: name("css"),
        dial_string: DialStringInterpretation::DigitsStarPlus,
        add_dest_route_string: false,
        route_on_dest_route_string: false,
        options_ping: OptionsPing::default(),
    })
    .unwrap();
    let mut seen = HashSet::new();
    for (text, part) in patterns {
        let action = PatternAction::Route { trunk: name("t") };
        let partition = name(PARTITIONS[*part]);
        if numeric {
            let p = NumericPattern::parse(text).unwrap();
            if seen.insert((p.as_str().to_owned(), *part)) {
                b.numeric_route_pattern(p, partition, action).unwrap();
            }
        } else {
            let p = SipPattern::parse(text).unwrap();
            if seen.insert((p.to_string(), *part)) {
                b.sip_route_pattern(p, partition, action).unwrap();
            }
        }
    }
    Router::new(
        b.build(),
        Arc::new(LearnedTable::new(
            10,
            DuplicatePolicy::FirstLearned,
            UriLookupPolicy::CaseSensitive,
        )),
    )
}

/// The brute-force winner: greatest specificity, then earliest partition.
fn expected(
    patterns: &[(String, usize)],
    matching: impl Fn(&str) -> Option<Specificity>,
) -> Option<(Specificity, usize)> {
    let mut best: Option<(Specificity, usize)> = None;
    for (text, part) in patterns {
        let Some(s) = matching(text) else { continue };
        let better = match &best {
            None => true,
            Some((bs, bp)) => s > *bs || (s == *bs && part < bp),
        };
        if better {
            best = Some((s, *part));
        }
    }
    best
}

fn check(
    r: &Router,
    req: &RouteRequest<'_>,
    want: Option<(Specificity, usize)>,
    spec_of: impl Fn(&str) -> Specificity,
) -> Result<(), TestCaseError> {
    let d = r.decide(req);
    let (explained, trace) = r.explain(req);
    prop_assert_eq!(&d, &explained);
    match want {
        None => prop_assert_eq!(d, Decision::NotFound),
        Some((spec, part)) => {
            let pattern = d.pattern().unwrap_or_default();
            prop_assert_eq!(spec_of(pattern), spec, "{:?}\n{}", d, trace);
            prop_assert_eq!(
                d.partition().map(Name::as_str),
                Some(PARTITIONS[part]),
                "{}",
                trace
            );
        }
    }
    Ok(())
}

fn domain_pattern() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        Just("a"),
        Just("b"),
        Just("ab"),
        Just("[ab]"),
        Just("[a-c]b")
    ];
    prop_oneof![
        1 => Just("*".to_owned()),
        6 => (any::<bool>(), proptest::collection::vec(label, 1..3)).prop_map(|(star, labels)| {
            let body = labels.join(".");
            if star { format!("*.{body}") } else { body }
        }),
    ]
}

fn numeric_pattern() -> impl Strategy<Value = String> {
    let pos = prop_oneof![Just("1"), Just("2"), Just("X"), Just("[1-2]"), Just("[^1]")];
    (proptest::collection::vec(pos, 0..4), any::<bool>())
        .prop_filter("non-empty", |(p, open)| *open || !p.is_empty())
        .prop_map(|(p, open)| format!("{}{}", p.concat(), if open { "!" } else { "" }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn domain_search_agrees_with_brute_force(
        patterns in proptest::collection::vec((domain_pattern(), 0..3usize), 1..12),
        hosts in proptest::collection::vec("(a|b|ab|cb|x)(\\.(a|b|ab|cb)){0,3}", 8),
    ) {
        let r = router(&patterns, false);
        let spec = |t: &str| SipPattern::parse(t).unwrap().specificity();
        for host in &hosts {
            let want = expected(&patterns, |t| {
                let SipPattern::Domain(d) = SipPattern::parse(t).unwrap() else { return None };
                d.matches(host).then(|| d.specificity())
            });
            let req = RouteRequest { from: Inbound::Trunk("t"), user: None, host, dest_route_string: None };
            check(&r, &req, want, spec)?;
        }
    }

    #[test]
    fn numeric_search_agrees_with_brute_force(
        patterns in proptest::collection::vec((numeric_pattern(), 0..3usize), 1..12),
        numbers in proptest::collection::vec("[0-3]{1,5}", 8),
    ) {
        let r = router(&patterns, true);
        let spec = |t: &str| NumericPattern::parse(t).unwrap().specificity();
        for number in &numbers {
            let want = expected(&patterns, |t| {
                let p = NumericPattern::parse(t).unwrap();
                p.matches(number).then(|| p.specificity())
            });
            let req = RouteRequest { from: Inbound::Trunk("t"), user: Some(number), host: "x.com", dest_route_string: None };
            check(&r, &req, want, spec)?;
        }
    }
}
