//! Property tests: patterns match exactly their expansion, and specificity is a total order
//! that agrees with match-set inclusion.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

/// One numeric position as pattern text and the characters it matches.
fn numeric_position() -> impl Strategy<Value = (String, Vec<char>)> {
    prop_oneof![
        (0u8..3).prop_map(|d| {
            let c = char::from(b'0' + d);
            (c.to_string(), vec![c])
        }),
        Just(("*".to_owned(), vec!['*'])),
        Just(("X".to_owned(), ('0'..='9').collect())),
        (0u8..10, 0u8..10, any::<bool>()).prop_map(|(a, b, negate)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let inside: Vec<char> = (lo..=hi).map(|d| char::from(b'0' + d)).collect();
            let text = format!(
                "[{}{}-{}]",
                if negate { "^" } else { "" },
                char::from(b'0' + lo),
                char::from(b'0' + hi)
            );
            let chars = if negate {
                ('0'..='9').filter(|c| !inside.contains(c)).collect()
            } else {
                inside
            };
            (text, chars)
        }),
    ]
}

/// A numeric pattern of up to three fixed positions, maybe with a trailing `!`, that is
/// valid (a negated full range matches nothing and is skipped).
fn numeric_pattern() -> impl Strategy<Value = (String, Vec<Vec<char>>, bool)> {
    (
        proptest::collection::vec(numeric_position(), 0..4),
        any::<bool>(),
    )
        .prop_filter("valid", |(pos, open)| {
            (*open || !pos.is_empty()) && pos.iter().all(|(_, chars)| !chars.is_empty())
        })
        .prop_map(|(pos, open)| {
            let mut text: String = pos.iter().map(|(t, _)| t.as_str()).collect();
            if open {
                text.push('!');
            }
            (text, pos.into_iter().map(|(_, c)| c).collect(), open)
        })
}

fn expand(positions: &[Vec<char>]) -> BTreeSet<String> {
    positions
        .iter()
        .fold(BTreeSet::from([String::new()]), |acc, chars| {
            acc.iter()
                .flat_map(|prefix| chars.iter().map(move |c| format!("{prefix}{c}")))
                .collect()
        })
}

/// Every string over `0-9 *` of length `1..=max`.
fn universe(max: usize) -> Vec<String> {
    let alphabet: Vec<char> = ('0'..='9').chain(['*']).collect();
    let mut all = Vec::new();
    let mut level = vec![String::new()];
    for _ in 0..max {
        level = level
            .iter()
            .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
            .collect();
        all.extend(level.iter().cloned());
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn numeric_pattern_matches_exactly_its_expansion(
        (text, positions, open) in numeric_pattern(),
        probes in proptest::collection::vec("[0-9*#]{0,6}", 32),
    ) {
        let pattern = NumericPattern::parse(&text).unwrap();
        let fixed = expand(&positions);
        let expected = |s: &str| {
            if open {
                s.len() > positions.len()
                    && fixed.contains(&s[..positions.len()])
                    && s[positions.len()..].bytes().all(|b| b.is_ascii_digit())
            } else {
                fixed.contains(s)
            }
        };
        for s in &fixed {
            let probe = if open { format!("{s}7") } else { s.clone() };
            prop_assert!(pattern.matches(&probe), "{} should match {}", text, probe);
        }
        for s in &probes {
            prop_assert_eq!(pattern.matches(s), expected(s), "{} against {}", text, s);
        }
    }

    #[test]
    fn numeric_specificity_agrees_with_inclusion(
        (a, _, _) in numeric_pattern(),
        (b, _, _) in numeric_pattern(),
    ) {
        let (pa, pb) = (NumericPattern::parse(&a).unwrap(), NumericPattern::parse(&b).unwrap());
        // Patterns have at most 3 fixed positions; one more character decides inclusion of the
        // `!` tails, so strings up to length 4 are enough.
        let words = universe(4);
        let sa: BTreeSet<&String> = words.iter().filter(|w| pa.matches(w)).collect();
        let sb: BTreeSet<&String> = words.iter().filter(|w| pb.matches(w)).collect();
        let (xa, xb) = (pa.specificity(), pb.specificity());
        prop_assert_eq!(xa.cmp(&xb), xb.cmp(&xa).reverse());
        if sa != sb && sa.is_subset(&sb) {
            prop_assert!(xa > xb, "{} ⊂ {} but {} <= {}", a, b, xa, xb);
        }
        if sa == sb {
            prop_assert_eq!(xa, xb, "{} and {} match the same strings", a, b);
        }
    }

    #[test]
    fn specificity_is_transitive(
        (a, _, _) in numeric_pattern(),
        (b, _, _) in numeric_pattern(),
        (c, _, _) in numeric_pattern(),
    ) {
        let [x, y, z] = [a, b, c].map(|t| NumericPattern::parse(&t).unwrap().specificity());
        if x >= y && y >= z {
            prop_assert!(x >= z);
        }
        if x == y && y == z {
            prop_assert!(x == z);
        }
    }

    #[test]
    fn domain_pattern_matches_exactly_its_expansion(
        labels in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                Just(("a", vec!['a'])),
                Just(("b", vec!['b'])),
                Just(("[a-c]", vec!['a', 'b', 'c'])),
                Just(("[ab]", vec!['a', 'b'])),
            ], 1..3),
            1..3,
        ),
        probes in proptest::collection::vec("[a-d](\\.[a-d]{1,2}){0,2}", 24),
    ) {
        let text = labels
            .iter()
            .map(|l| l.iter().map(|(t, _)| *t).collect::<String>())
            .collect::<Vec<_>>()
            .join(".");
        let pattern = DomainPattern::parse(&text).unwrap();
        let per_label: Vec<BTreeSet<String>> = labels
            .iter()
            .map(|l| expand(&l.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>()))
            .collect();
        let hosts: BTreeSet<String> = per_label.iter().fold(BTreeSet::from([String::new()]), |acc, set| {
            acc.iter()
                .flat_map(|p| set.iter().map(move |l| if p.is_empty() { l.clone() } else { format!("{p}.{l}") }))
                .collect()
        });
        for h in &hosts {
            prop_assert!(pattern.matches(h));
            prop_assert!(pattern.matches(&h.to_ascii_uppercase()));
            let starred = DomainPattern::parse(&format!("*.{text}")).unwrap();
            let sub = format!("x.{h}");
            prop_assert!(starred.matches(&sub));
            prop_assert!(!starred.matches(h));
            let exact = DomainPattern::parse(&format!("x.{text}")).unwrap();
            prop_assert!(exact.matches(&sub));
            prop_assert!(starred.specificity() < exact.specificity());
        }
        for p in &probes {
            prop_assert_eq!(pattern.matches(p), hosts.contains(p));
        }
    }

    #[test]
    fn ip_blocks_nest_by_prefix(addr in any::<u32>(), a in 0u8..=32, b in 0u8..=32) {
        let (long, short) = (a.max(b), a.min(b));
        let block = |prefix: u8| {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpPattern::parse(&format!("{}/{prefix}", Ipv4Addr::from(addr & m))).unwrap()
        };
        let (inner, outer) = (block(long), block(short));
        let ip = IpAddr::V4(addr.into());
        prop_assert!(inner.contains(ip) && outer.contains(ip));
        prop_assert!(outer.contains(inner.network()));
        prop_assert!(inner.specificity() >= outer.specificity());
        prop_assert_eq!(inner.specificity() == outer.specificity(), long == short);
    }
}

#[test]
fn sip_pattern_picks_ip_or_domain() {
    assert!(matches!(
        SipPattern::parse("10.0.0.0/8"),
        Ok(SipPattern::Ip(_))
    ));
    assert!(matches!(
        SipPattern::parse("2001:db8::1"),
        Ok(SipPattern::Ip(_))
    ));
    assert!(matches!(
        SipPattern::parse("hq.route"),
        Ok(SipPattern::Domain(_))
    ));
    assert!(matches!(
        SipPattern::parse("10.0.0.1/8"),
        Err(PatternError::HostBits { .. })
    ));
    assert_eq!(
        SipPattern::parse("HQ.Route").unwrap().to_string(),
        "hq.route"
    );
}
