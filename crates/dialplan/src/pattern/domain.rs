//! Domain SIP route patterns: `hq.route`, `*.route`, `*`, `rtp-ccm[1-5].example.com`.

use std::fmt;

use super::{PatternError, Rank, Specificity};

/// A domain route pattern, matched case-insensitively against a host name or a route string.
///
/// Labels hold letters, digits and `-`, and character classes such as `[1-5]`, `[a-c]` or
/// `[^0]`, each matching one character. A leftmost label `*` matches one or more labels, so
/// `*.route` matches `hq.route` and `a.b.route` but not `route`; `*` alone matches any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    /// Lower-cased text.
    text: Box<str>,
    /// A leftmost `*` label.
    star: bool,
    /// The labels right of the `*`, left to right.
    labels: Box<[Label]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Label(Box<[Item]>);

/// One character position of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// A lower-case character.
    Char(u8),
    /// A set of characters: bit `c` stands for ASCII `c`.
    Set(u128),
}

impl DomainPattern {
    /// Parses a domain pattern (case-insensitive; held lower-cased).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let lower = text.to_ascii_lowercase();
        let body = lower.strip_suffix('.').unwrap_or(&lower);
        if body.is_empty() {
            return Err(PatternError::Empty);
        }
        let (star, rest) = match body.strip_prefix('*') {
            Some("") => (true, None),
            Some(rest) => match rest.strip_prefix('.') {
                Some(rest) => (true, Some((rest, 2))),
                None => return Err(PatternError::MisplacedStar { at: 0 }),
            },
            None => (false, Some((body, 0))),
        };
        let mut labels = Vec::new();
        if let Some((rest, mut offset)) = rest {
            for label in rest.split('.') {
                labels.push(parse_label(label, offset)?);
                offset += label.len() + 1;
            }
        }
        Ok(Self {
            text: body.into(),
            star,
            labels: labels.into(),
        })
    }

    /// The pattern, lower-cased.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `host` (a host name or route string, any case, optional trailing dot) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut host_labels = host.rsplit('.');
        for label in self.labels.iter().rev() {
            match host_labels.next() {
                Some(h) if label.matches(h.as_bytes()) => {}
                _ => return false,
            }
        }
        if self.star {
            // One or more further labels, none of them empty.
            let mut any = false;
            for h in host_labels {
                if h.is_empty() {
                    return false;
                }
                any = true;
            }
            any
        } else {
            host_labels.next().is_none()
        }
    }

    /// How specific the pattern is. Labels compare from the right: an exact label beats a
    /// class, a smaller class beats a larger one, and any label beats `*`; so `hq.route` beats
    /// `*.route`, which beats `*`.
    pub fn specificity(&self) -> Specificity {
        let mut counts: Vec<u64> = self.labels.iter().rev().map(Label::count).collect();
        if self.star {
            counts.push(u64::MAX);
        }
        Specificity(Rank::Domain(counts.into()))
    }

    /// The longest run of plain-text labels at the right end, such as `example.com` for
    /// `rtp-ccm[1-5].example.com` or `route` for `*.route` (the plan groups wildcard patterns
    /// by it). `None` when the rightmost label has a class or the pattern is `*`.
    pub(crate) fn literal_suffix(&self) -> Option<String> {
        let literal = |l: &&Label| l.0.iter().all(|i| matches!(i, Item::Char(_)));
        let n = self.labels.iter().rev().take_while(literal).count();
        if n == 0 {
            return None;
        }
        let labels = &self.labels[self.labels.len() - n..];
        let text: Vec<String> = labels
            .iter()
            .map(|l| {
                l.0.iter()
                    .map(|i| match *i {
                        Item::Char(c) => char::from(c),
                        Item::Set(_) => '?',
                    })
                    .collect()
            })
            .collect();
        Some(text.join("."))
    }

    /// Whether the pattern is a plain name that only that name matches (the plan indexes
    /// these in a hash map).
    pub(crate) fn is_exact(&self) -> bool {
        !self.star
            && self
                .labels
                .iter()
                .all(|l| l.0.iter().all(|i| matches!(i, Item::Char(_))))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Label {
    fn matches(&self, host_label: &[u8]) -> bool {
        host_label.len() == self.0.len()
            && self.0.iter().zip(host_label).all(|(item, &c)| {
                let c = c.to_ascii_lowercase();
                match *item {
                    Item::Char(p) => p == c,
                    Item::Set(set) => c < 128 && set & (1u128 << c) != 0,
                }
            })
    }

    /// How many distinct labels match (saturating).
    fn count(&self) -> u64 {
        self.0.iter().fold(1u64, |n, item| match *item {
            Item::Char(_) => n,
            Item::Set(set) => n.saturating_mul(u64::from(set.count_ones())),
        })
    }
}

/// Rank of a domain pattern: per-label match counts from the right, `u64::MAX` for `*`.
/// Greater is more specific.
pub(super) fn cmp_domain(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        match y.cmp(x) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    // Equal up to the shorter: more labels is more specific (it fixes more of the name).
    a.len().cmp(&b.len())
}

pub(super) fn fmt_domain(counts: &[u64], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("labels ")?;
    for (i, n) in counts.iter().rev().enumerate() {
        if i > 0 {
            f.write_str(".")?;
        }
        if *n == u64::MAX {
            f.write_str("*")?;
        } else {
            write!(f, "{n}")?;
        }
    }
    Ok(())
}

fn parse_label(label: &str, offset: usize) -> Result<Label, PatternError> {
    if label.is_empty() {
        return Err(PatternError::EmptyLabel { at: offset });
    }
    let bytes = label.as_bytes();
    let mut items = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => items.push(Item::Char(b)),
            b'[' => {
                let (set, end) = parse_class(bytes, i, offset)?;
                items.push(Item::Set(set));
                i = end;
            }
            b'*' => return Err(PatternError::MisplacedStar { at: offset + i }),
            _ => {
                return Err(PatternError::BadChar {
                    ch: label[i..].chars().next().unwrap_or('?'),
                    at: offset + i,
                    kind: "domain",
                });
            }
        }
        i += 1;
    }
    Ok(Label(items.into()))
}

fn parse_class(bytes: &[u8], start: usize, offset: usize) -> Result<(u128, usize), PatternError> {
    let is_host_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let mut i = start + 1;
    let negate = bytes.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut set = 0u128;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(PatternError::UnclosedClass { at: offset + start });
        };
        if b == b']' {
            break;
        }
        if !is_host_char(b) {
            return Err(PatternError::BadChar {
                ch: char::from(b),
                at: offset + i,
                kind: "domain class",
            });
        }
        let mut hi = b;
        if b != b'-' && bytes.get(i + 1) == Some(&b'-') && bytes.get(i + 2) != Some(&b']') {
            match bytes.get(i + 2) {
                Some(&h)
                    if is_host_char(h) && h >= b && h.is_ascii_digit() == b.is_ascii_digit() =>
                {
                    hi = h;
                    i += 2;
                }
                _ => return Err(PatternError::BadRange { at: offset + i }),
            }
        }
        for c in b..=hi {
            set |= 1u128 << c;
        }
        i += 1;
    }
    if negate {
        let all = (b'a'..=b'z')
            .chain(b'0'..=b'9')
            .chain([b'-'])
            .fold(0u128, |s, c| s | 1u128 << c);
        set = !set & all;
    }
    if set == 0 {
        return Err(PatternError::EmptyClass { at: offset + start });
    }
    Ok((set, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DomainPattern {
        DomainPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_label_beats_wildcard() {
        // CUCM: hq.route beats *.route; both beat the catch-all *.
        assert!(p("hq.route").specificity() > p("*.route").specificity());
        assert!(p("*.route").specificity() > p("*").specificity());
        assert!(
            p("rtp-ccm1.example.com").specificity() > p("rtp-ccm[1-5].example.com").specificity()
        );
        assert!(
            p("rtp-ccm[1-3].example.com").specificity()
                > p("rtp-ccm[1-5].example.com").specificity()
        );
        assert!(p("rtp-ccm[1-5].example.com").specificity() > p("*.example.com").specificity());
        assert!(p("*.b.route").specificity() > p("*.route").specificity());
    }

    #[test]
    fn matches_case_insensitively() {
        assert!(p("HQ.Route").matches("hq.ROUTE"));
        assert!(p("hq.route").matches("hq.route."));
        assert!(!p("hq.route").matches("xhq.route"));
        assert!(p("*.route").matches("hq.route"));
        assert!(p("*.route").matches("a.b.route"));
        assert!(!p("*.route").matches("route"));
        assert!(!p("*.route").matches(".route"));
        assert!(p("*").matches("anything.example.com"));
        assert!(p("rtp-ccm[1-5].example.com").matches("RTP-CCM3.example.com"));
        assert!(!p("rtp-ccm[1-5].example.com").matches("rtp-ccm6.example.com"));
        assert!(p("a[^b]c").matches("axc"));
        assert!(!p("a[^b]c").matches("abc"));
        assert!(p("hq.route").is_exact());
        assert_eq!(p("*.route").literal_suffix().as_deref(), Some("route"));
        assert_eq!(
            p("rtp-ccm[1-5].example.com").literal_suffix().as_deref(),
            Some("example.com")
        );
        assert_eq!(p("a.[bc]").literal_suffix(), None);
        assert_eq!(p("*").literal_suffix(), None);
        assert!(!p("*.route").is_exact());
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(DomainPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(
            DomainPattern::parse("a..b"),
            Err(PatternError::EmptyLabel { at: 2 })
        );
        assert_eq!(
            DomainPattern::parse("a.*.b"),
            Err(PatternError::MisplacedStar { at: 2 })
        );
        assert_eq!(
            DomainPattern::parse("*x.b"),
            Err(PatternError::MisplacedStar { at: 0 })
        );
        assert!(matches!(
            DomainPattern::parse("a_b.route"),
            Err(PatternError::BadChar { ch: '_', at: 1, .. })
        ));
        assert_eq!(
            DomainPattern::parse("a[1-"),
            Err(PatternError::BadRange { at: 2 })
        );
        assert_eq!(
            DomainPattern::parse("a[12"),
            Err(PatternError::UnclosedClass { at: 1 })
        );
    }
}
