//! The ils-edge daemon and its commands: configuration loading, the wiring of the dial plan,
//! the SIP proxy and the replication network, and the operators' commands.
//!
//! `main.rs` only parses the command line and calls into this crate, so integration tests can
//! drive the same code in-process.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod replication;
pub mod routing;
pub mod sip;

/// Exit status for a bad command line or configuration (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit status for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;
