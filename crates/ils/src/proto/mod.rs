//! The replication protocol without I/O: wire messages and framing, the per-link [`Session`]
//! and the per-cluster [`Node`].
//!
//! Nothing here imports tokio or a socket, or reads the clock: callers pass frames and `now`
//! in and take frames, events and deadlines out. `docs/ils-protocol.md` describes the wire
//! format and the state machines.

pub mod codec;
pub mod handshake;
pub mod node;
mod records;
pub mod session;
pub mod wire;

pub use codec::{DecodeError, FrameDecoder};
pub use handshake::{
    Admission, AuthContext, AuthError, AuthFailure, Authenticator, LinkInfo, LocalIdentity,
    NONCE_LEN, OpenAuthenticator, PeerHello, Side, TlsInfo, fresh_nonce,
};
pub use node::{
    AdvertiseReport, DurableBatch, Event, LinkId, Node, NodeConfig, OriginDelta, PeerInfo, PeerRow,
    PeerState, RecordChange, Stats,
};
pub use session::{CloseReason, Session, SessionConfig, SessionError, SessionEvent};
pub use wire::{Frame, RefuseReason};

#[cfg(test)]
mod tests;
