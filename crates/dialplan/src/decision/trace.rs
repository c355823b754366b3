//! The trace of a routing decision: every step the router took and why the winner won, like
//! CUCM's Dialed Number Analyzer.

use std::fmt;
use std::net::IpAddr;

use crate::ids::{ClusterId, IdError, Name, RouteString};
use crate::pattern::Specificity;
use crate::plan::DialStringInterpretation;

/// The steps of one decision, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The steps.
    pub steps: Vec<TraceStep>,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}

/// One step of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceStep {
    /// The call arrived over a configured trunk.
    InboundTrunk {
        /// The trunk.
        trunk: Name,
        /// The `accepts` entry that matched the source address, when found by address.
        matched: Option<String>,
        /// The trunk's inbound calling search space.
        css: Name,
        /// The trunk's dial string interpretation.
        dial_string: DialStringInterpretation,
    },
    /// No configured trunk matches the caller.
    NoInboundTrunk {
        /// The trunk name or source address given.
        from: String,
    },
    /// No trunk matched; the default inbound calling search space applies.
    DefaultInboundCss {
        /// The calling search space.
        css: Name,
    },
    /// The request carried `X-cisco-dest-route-string`.
    DestRouteString {
        /// The header value.
        value: String,
        /// Whether the router routes on it (the trunk honours it and it is a valid route string).
        honoured: bool,
    },
    /// The user part was classified by the trunk's dial string interpretation.
    Classified {
        /// The user part as received, if any.
        user: Option<String>,
        /// What it was taken for.
        class: DialClass,
    },
    /// The Request-URI is not a valid directory URI.
    InvalidUri {
        /// Why.
        error: IdError,
    },
    /// A partition was searched for the directory URI.
    SearchedPartition {
        /// The partition.
        partition: Name,
        /// Whether it holds the URI.
        found: bool,
    },
    /// The URI is local, but only in partitions outside the calling search space.
    OutsideCss {
        /// The partitions that hold it.
        partitions: Vec<Name>,
    },
    /// The URI is in the learned table.
    Learned {
        /// Its route string.
        route_string: RouteString,
        /// The cluster whose claim won.
        origin: ClusterId,
    },
    /// The URI is not in the learned table.
    NotLearned,
    /// Several clusters claim the URI; the duplicate policy chose the winner.
    Conflict {
        /// The winning cluster.
        winner: ClusterId,
        /// The others.
        others: Vec<ClusterId>,
    },
    /// Route patterns of the calling search space are searched for a subject.
    Matching {
        /// What is matched.
        subject: Subject,
        /// Its value.
        value: String,
    },
    /// A pattern matched.
    PatternCandidate {
        /// The pattern.
        pattern: String,
        /// Its partition.
        partition: Name,
        /// How specific it is.
        specificity: Specificity,
    },
    /// No pattern of the calling search space matched.
    NoMatch {
        /// What was matched.
        subject: Subject,
        /// Its value.
        value: String,
    },
    /// The pattern that won.
    Winner {
        /// The pattern.
        pattern: String,
        /// Its partition.
        partition: Name,
        /// Why it won.
        reason: WinReason,
    },
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InboundTrunk {
                trunk,
                matched,
                css,
                dial_string,
            } => {
                write!(f, "inbound trunk {trunk}")?;
                if let Some(m) = matched {
                    write!(f, " (source matches {m})")?;
                }
                write!(f, ": calling search space {css}, dial string {dial_string}")
            }
            Self::NoInboundTrunk { from } => write!(f, "no trunk matches {from}"),
            Self::DefaultInboundCss { css } => {
                write!(f, "default inbound calling search space {css}")
            }
            Self::DestRouteString { value, honoured } => {
                let how = if *honoured {
                    "routing on it"
                } else {
                    "ignored"
                };
                write!(f, "X-cisco-dest-route-string {value}: {how}")
            }
            Self::Classified { user, class } => match user {
                Some(u) => write!(f, "user part {u:?} is {class}"),
                None => write!(f, "no user part: {class}"),
            },
            Self::InvalidUri { error } => write!(f, "not a valid directory URI: {error}"),
            Self::SearchedPartition { partition, found } => {
                let what = if *found { "holds" } else { "does not hold" };
                write!(f, "partition {partition} {what} the URI")
            }
            Self::OutsideCss { partitions } => {
                write!(f, "URI exists only outside the calling search space, in ")?;
                write_list(f, partitions)
            }
            Self::Learned {
                route_string,
                origin,
            } => write!(
                f,
                "learned from cluster {origin} with route string {route_string}"
            ),
            Self::NotLearned => f.write_str("not in the learned table"),
            Self::Conflict { winner, others } => {
                write!(f, "claimed by several clusters: {winner} wins over ")?;
                write_list(f, others)
            }
            Self::Matching { subject, value } => {
                write!(f, "matching {subject} {value} against route patterns")
            }
            Self::PatternCandidate {
                pattern,
                partition,
                specificity,
            } => write!(f, "candidate {pattern} in {partition} ({specificity})"),
            Self::NoMatch { subject, value } => {
                write!(f, "no route pattern matches {subject} {value}")
            }
            Self::Winner {
                pattern,
                partition,
                reason,
            } => write!(f, "winner {pattern} in {partition}: {reason}"),
        }
    }
}

/// What a user part was taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DialClass {
    /// A number, routed by numeric patterns.
    Number,
    /// A directory URI.
    Uri,
    /// No user part: the host is routed.
    Host,
}

impl fmt::Display for DialClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Number => "a number",
            Self::Uri => "a directory URI",
            Self::Host => "routing on the host",
        })
    }
}

/// What a route pattern search matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subject {
    /// A dialled number.
    Number,
    /// A local URI's directory number.
    DirectoryNumber,
    /// A learned URI's route string, or `X-cisco-dest-route-string`.
    RouteString,
    /// The Request-URI host.
    Host,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Number => "number",
            Self::DirectoryNumber => "directory number",
            Self::RouteString => "route string",
            Self::Host => "host",
        })
    }
}

/// Why a pattern won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WinReason {
    /// It was the only match.
    OnlyMatch,
    /// It is more specific than every other match.
    MostSpecific {
        /// How many patterns matched in all.
        candidates: usize,
    },
    /// Others were as specific; its partition comes first in the calling search space (or,
    /// within one partition, it was configured first).
    CssOrder {
        /// How many matches were as specific.
        tied: usize,
    },
}

impl fmt::Display for WinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnlyMatch => f.write_str("only match"),
            Self::MostSpecific { candidates } => {
                write!(f, "most specific of {candidates} matches")
            }
            Self::CssOrder { tied } => write!(
                f,
                "tied with {} as specific; first in calling search space order",
                tied - 1
            ),
        }
    }
}

/// Where the router reports its steps. [`NoTrace`] compiles every step away.
pub(crate) trait Tracer {
    /// Whether steps are kept; lets the router skip work only a trace needs.
    const ENABLED: bool;
    /// Records a step; `step` runs only when tracing.
    fn step(&mut self, step: impl FnOnce() -> TraceStep);
}

/// The hot path's tracer: records nothing.
pub(crate) struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> TraceStep) {}
}

impl Tracer for Trace {
    const ENABLED: bool = true;
    fn step(&mut self, step: impl FnOnce() -> TraceStep) {
        self.steps.push(step());
    }
}

/// The source of a request, for trace messages.
pub(crate) fn describe_source(addr: IpAddr) -> String {
    format!("source address {addr}")
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}
