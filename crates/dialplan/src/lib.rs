//! The dial plan of ils-edge: the domain types every other crate shares, the route table, and
//! the routing decision every INVITE gets.
//!
//! This crate does no I/O and reads no clock. Values are valid by construction: a
//! [`DirectoryUri`], a [`RouteString`] or a [`ClusterId`] that exists has passed every rule
//! CUCM applies to it, so the table and the decision never see raw strings.
#![forbid(unsafe_code)]

pub mod ids;

pub use ids::{
    ClusterId, DirectoryNumber, DirectoryUri, IdError, Name, Role, RouteString, UriLookupPolicy,
};
