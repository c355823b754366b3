//! Deterministic scenarios: hubs and spokes driven through a [`mesh::Mesh`] with a fake clock.

mod durable;
mod handshake;
mod mesh;
mod scenarios;
mod topology;
