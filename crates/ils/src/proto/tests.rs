//! Mesh tests.
