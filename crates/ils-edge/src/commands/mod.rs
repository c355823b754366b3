//! The operators' commands that need no running edge: `check-config`, `route-test` and
//! `generate-directory`.

pub mod generate;
pub mod import;
pub mod ops;
pub mod route_test;
