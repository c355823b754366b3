//! The tokio driver over real sockets on 127.0.0.1: UDP, TCP and TLS calls through the proxy
//! to a fake trunk, failover, malformed input and shutdown.

mod harness;
mod scenarios;
