//! The dial plan of ils-edge: the domain types every other crate shares, the route table, and
//! the routing decision every INVITE gets.
//!
//! This crate does no I/O and reads no clock. Values are valid by construction: a
//! [`DirectoryUri`], a [`RouteString`] or a [`ClusterId`] that exists has passed every rule
//! CUCM applies to it, so the table and the decision never see raw strings.
//!
//! ```text
//!  config ──▶ DialPlanBuilder ──build──▶ DialPlan ─┐
//!                                                  ├──▶ Router::decide(RouteRequest) ──▶ Decision
//!  ILS ──LearnedBatch──▶ LearnedTable::apply ──────┘       (explain() adds the Trace)
//! ```
//!
//! Layout: [`ids`] (identity values), [`pattern`] (route patterns and their specificity),
//! [`plan`] (partitions, calling search spaces, trunks, local URIs), [`table`] (learned URIs)
//! and [`decision`] (the router).
#![forbid(unsafe_code)]

pub mod decision;
pub mod ids;
pub mod pattern;
pub mod plan;
pub mod table;

pub use decision::{Decision, Inbound, RouteRequest, Router, Trace, TraceStep};
pub use ids::{
    ClusterId, DirectoryNumber, DirectoryUri, IdError, Name, Role, RouteString, UriLookupPolicy,
};
pub use pattern::{
    DomainPattern, IpPattern, NumericPattern, PatternError, SipPattern, Specificity,
};
pub use plan::{
    Destination, DialPlan, DialPlanBuilder, DialStringInterpretation, LocalUri, OptionsPing,
    PatternAction, PlanError, Transport, TrunkSpec, ValueError,
};
pub use table::{
    ApplyReport, Conflict, DuplicatePolicy, LearnedBatch, LearnedChange, LearnedEntry, LearnedTable,
};
