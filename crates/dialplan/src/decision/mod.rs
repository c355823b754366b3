//! The routing decision every INVITE gets (PRODUCT.md, "How a call is routed"), and the
//! router that holds the current dial plan and the learned table.

mod route;
mod trace;

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

pub use trace::{DialClass, Subject, Trace, TraceStep, WinReason};

use crate::ids::{ClusterId, DirectoryNumber, DirectoryUri, Name, RouteString};
use crate::plan::{DialPlan, TrunkSpec};
use crate::table::LearnedTable;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A trunk already identified by name (for example by its TLS certificate).
    Trunk(&'a str),
    /// A source address, matched against the trunks' `accepts`.
    Address(IpAddr),
}

/// The parts of a request the decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    /// Where the request came from.
    pub from: Inbound<'a>,
    /// The Request-URI user part as received (possibly percent-escaped), if any.
    pub user: Option<&'a str>,
    /// The Request-URI host.
    pub host: &'a str,
    /// The `X-cisco-dest-route-string` header value, if present (`<sip:hq.route>` or bare).
    pub dest_route_string: Option<&'a str>,
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A local directory URI: its directory number, routed by a numeric pattern, gives the trunk.
    Local {
        /// The partition that holds the URI.
        partition: Name,
        /// The URI.
        uri: DirectoryUri,
        /// Its directory number.
        directory_number: DirectoryNumber,
        /// The numeric pattern that routed the directory number.
        pattern: String,
        /// The trunk the call goes over.
        trunk: Arc<TrunkSpec>,
    },
    /// A learned URI (or `X-cisco-dest-route-string`): its route string, matched against SIP
    /// route patterns, gives the trunk.
    Learned {
        /// The URI called.
        uri: DirectoryUri,
        /// The route string routed on.
        route_string: RouteString,
        /// The cluster that advertised the URI; `None` when routed on the header.
        origin: Option<ClusterId>,
        /// The partition of the winning route pattern (learned URIs have none of their own).
        partition: Name,
        /// The winning SIP route pattern.
        pattern: String,
        /// The trunk the call goes over.
        trunk: Arc<TrunkSpec>,
    },
    /// A dialled number routed by a numeric pattern.
    Number {
        /// The partition of the winning pattern.
        partition: Name,
        /// The winning numeric pattern.
        pattern: String,
        /// The trunk the call goes over.
        trunk: Arc<TrunkSpec>,
    },
    /// The host part routed by a domain or IP route pattern.
    Domain {
        /// The partition of the winning pattern.
        partition: Name,
        /// The winning SIP route pattern.
        pattern: String,
        /// The trunk the call goes over.
        trunk: Arc<TrunkSpec>,
    },
    /// A blocking pattern won.
    Blocked {
        /// The partition of the pattern.
        partition: Name,
        /// The pattern.
        pattern: String,
        /// The SIP status to answer with.
        status: u16,
    },
    /// Nothing in the caller's calling search space matched: 404.
    NotFound,
    /// The caller is no configured trunk and there is no default inbound CSS: 403.
    Forbidden,
}

impl Decision {
    /// A short name for metrics and output: `local`, `learned`, `number`, `domain`,
    /// `blocked`, `not-found` or `forbidden`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Learned { .. } => "learned",
            Self::Number { .. } => "number",
            Self::Domain { .. } => "domain",
            Self::Blocked { .. } => "blocked",
            Self::NotFound => "not-found",
            Self::Forbidden => "forbidden",
        }
    }

    /// The SIP status to answer with when the call is refused: 404, 403 or the block status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Blocked { status, .. } => Some(*status),
            Self::NotFound => Some(404),
            Self::Forbidden => Some(403),
            _ => None,
        }
    }

    /// The trunk the call goes over, if it is routed.
    pub fn trunk(&self) -> Option<&Arc<TrunkSpec>> {
        match self {
            Self::Local { trunk, .. }
            | Self::Learned { trunk, .. }
            | Self::Number { trunk, .. }
            | Self::Domain { trunk, .. } => Some(trunk),
            _ => None,
        }
    }

    /// The partition of the URI (local) or of the winning pattern.
    pub fn partition(&self) -> Option<&Name> {
        match self {
            Self::Local { partition, .. }
            | Self::Learned { partition, .. }
            | Self::Number { partition, .. }
            | Self::Domain { partition, .. }
            | Self::Blocked { partition, .. } => Some(partition),
            _ => None,
        }
    }

    /// The winning pattern's text.
    pub fn pattern(&self) -> Option<&str> {
        match self {
            Self::Local { pattern, .. }
            | Self::Learned { pattern, .. }
            | Self::Number { pattern, .. }
            | Self::Domain { pattern, .. }
            | Self::Blocked { pattern, .. } => Some(pattern),
            _ => None,
        }
    }
}

// === Router ===

/// Decides where calls go. Holds the current [`DialPlan`], replaced whole on reload (calls in
/// progress keep the plan they started with), and the shared [`LearnedTable`].
pub struct Router {
    plan: ArcSwap<DialPlan>,
    learned: Arc<LearnedTable>,
}

impl Router {
    /// A router over `plan` and `learned`.
    pub fn new(plan: DialPlan, learned: Arc<LearnedTable>) -> Self {
        Self {
            plan: ArcSwap::from_pointee(plan),
            learned,
        }
    }

    /// Replaces the dial plan; the next decision uses the new one.
    pub fn replace_plan(&self, plan: DialPlan) {
        self.plan.store(Arc::new(plan));
    }

    /// The current dial plan.
    pub fn plan(&self) -> Guard<Arc<DialPlan>> {
        self.plan.load()
    }

    /// The learned table.
    pub fn learned(&self) -> &Arc<LearnedTable> {
        &self.learned
    }

    /// Decides where a request goes. This is the hot path: it records no trace and allocates
    /// only what the returned decision holds.
    pub fn decide(&self, req: &RouteRequest<'_>) -> Decision {
        route::route(&self.plan.load(), &self.learned, req, &mut trace::NoTrace)
    }

    /// Decides as [`Self::decide`] does, through the same code, recording every step. To list
    /// a learned URI's conflict it briefly takes the learned table's writer lock, so unlike
    /// `decide` it can wait for a batch in progress.
    pub fn explain(&self, req: &RouteRequest<'_>) -> (Decision, Trace) {
        let mut trace = Trace::default();
        let decision = route::route(&self.plan.load(), &self.learned, req, &mut trace);
        (decision, trace)
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("learned", &self.learned)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod select_tests;
#[cfg(test)]
mod tests;
