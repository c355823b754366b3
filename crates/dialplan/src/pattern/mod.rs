//! Route patterns and their specificity.
//!
//! CUCM routes to the *closest match*: of all patterns that match, the one that matches the
//! fewest strings wins, and the order of partitions in the calling search space only breaks
//! ties. [`Specificity`] captures that as an [`Ord`] value, so "most specific wins" is a
//! comparison: `1234` > `121X` > `12XX` > `1XXX`, `hq.route` > `*.route` > `*`, and a longer IP
//! prefix beats a shorter one.

mod domain;
mod ip;
mod numeric;

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

pub use domain::DomainPattern;
pub use ip::IpPattern;
pub use numeric::NumericPattern;

/// Why a route pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("empty pattern")]
    Empty,
    /// A character the pattern kind does not allow.
    #[error("character {ch:?} at position {at} is not allowed in a {kind} pattern")]
    BadChar {
        /// The character refused.
        ch: char,
        /// Its byte position.
        at: usize,
        /// Which part of the grammar refused it.
        kind: &'static str,
    },
    /// A `[` without its `]`.
    #[error("character class opened at position {at} is not closed")]
    UnclosedClass {
        /// Byte position of the `[`.
        at: usize,
    },
    /// A character class that matches nothing, such as `[^0-9]`.
    #[error("character class at position {at} matches nothing")]
    EmptyClass {
        /// Byte position of the `[`.
        at: usize,
    },
    /// A range in a class that is unfinished, runs backwards or mixes letters and digits.
    #[error("bad range at position {at}")]
    BadRange {
        /// Byte position of the range's first character.
        at: usize,
    },
    /// `!` followed by more of the pattern.
    #[error("`!` at position {at} must be the last element")]
    BangNotLast {
        /// Byte position of the `!`.
        at: usize,
    },
    /// More fixed positions than a numeric pattern may have.
    #[error("{len} positions, at most {max}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The count found.
        len: usize,
    },
    /// An empty label in a domain pattern (`a..b`).
    #[error("empty label at position {at}")]
    EmptyLabel {
        /// Byte position where the label should start.
        at: usize,
    },
    /// A `*` anywhere but as the whole leftmost label of a domain pattern.
    #[error("`*` at position {at} must be the whole leftmost label")]
    MisplacedStar {
        /// Byte position of the `*`.
        at: usize,
    },
    /// Text that should be an IP address is not one.
    #[error("{value:?} is not an IP address")]
    BadAddress {
        /// The text given.
        value: String,
    },
    /// A CIDR prefix length that is not a number from 0 to the address width.
    #[error("prefix length {prefix:?} is not a number from 0 to {max}")]
    BadPrefix {
        /// The prefix as given.
        prefix: String,
        /// The address width.
        max: u8,
    },
    /// A CIDR block with bits set beyond its prefix (`10.0.0.1/8`).
    #[error("{value:?} has bits set beyond its /{prefix} prefix")]
    HostBits {
        /// The pattern as given.
        value: String,
        /// The prefix length.
        prefix: u8,
    },
}

// === SipPattern ===

/// A SIP route pattern: a domain pattern or an IP pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipPattern {
    /// Matches host names and route strings.
    Domain(DomainPattern),
    /// Matches IP-literal hosts.
    Ip(IpPattern),
}

impl SipPattern {
    /// Parses the IP/CIDR form when the text is one, else a domain pattern. Text holding `/` or
    /// `:` is taken as IP only, so a bad CIDR reports an IP error rather than a domain one.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.contains(['/', ':']) || text.parse::<IpAddr>().is_ok() {
            return IpPattern::parse(text).map(Self::Ip);
        }
        DomainPattern::parse(text).map(Self::Domain)
    }

    /// How specific the pattern is.
    pub fn specificity(&self) -> Specificity {
        match self {
            Self::Domain(d) => d.specificity(),
            Self::Ip(i) => i.specificity(),
        }
    }
}

impl fmt::Display for SipPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => d.fmt(f),
            Self::Ip(i) => i.fmt(f),
        }
    }
}

// === Specificity ===

/// How specific a pattern is; greater is more specific.
///
/// Numeric patterns compare by how many strings they match (fewer wins), domain patterns label
/// by label from the right (exact, then smaller class, then `*`), IP patterns by prefix length.
/// Patterns of different kinds never compete for the same string; they still compare (by kind)
/// so the order is total.
#[derive(Debug, Clone)]
pub struct Specificity(Rank);

#[derive(Debug, Clone)]
enum Rank {
    Ip { prefix: u8 },
    Domain(Box<[u64]>),
    Numeric(numeric::NumericRank),
}

impl Rank {
    fn kind(&self) -> u8 {
        match self {
            Self::Ip { .. } => 0,
            Self::Domain(_) => 1,
            Self::Numeric(_) => 2,
        }
    }
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Rank::Ip { prefix: a }, Rank::Ip { prefix: b }) => a.cmp(b),
            (Rank::Domain(a), Rank::Domain(b)) => domain::cmp_domain(a, b),
            (Rank::Numeric(a), Rank::Numeric(b)) => a.cmp(b),
            (a, b) => a.kind().cmp(&b.kind()),
        }
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Specificity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Specificity {}

impl fmt::Display for Specificity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rank::Ip { prefix } => write!(f, "prefix /{prefix}"),
            Rank::Domain(counts) => domain::fmt_domain(counts, f),
            Rank::Numeric(rank) => rank.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests;
