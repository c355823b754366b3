//! The Intercluster Lookup Service (ILS) of ils-edge.

pub mod auth;
pub mod store;
