//! The replication messages, declared as protobuf messages (prost derive, no code generation).
//!
//! Every frame on a link carries one [`Envelope`] whose `body` is one [`Frame`]. Field numbers
//! are the wire contract: never reuse one, add new fields with new numbers (old peers skip
//! unknown fields), and bump [`PROTOCOL_VERSION`] only for changes an old peer would misread.
//! `docs/ils-protocol.md` describes each message and when it is sent.

use dialplan::Role;

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The oldest protocol version this build speaks.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// The outer message of every frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The message; `None` when the sender used a message type this build does not know.
    #[prost(
        oneof = "Frame",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"
    )]
    pub body: Option<Frame>,
}

/// One replication message.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Frame {
    /// Opens a link (dialer to acceptor).
    #[prost(message, tag = "1")]
    Hello(Hello),
    /// Answers a Hello with the acceptor's identity and challenge (acceptor to dialer).
    #[prost(message, tag = "2")]
    Welcome(Welcome),
    /// Refuses a link, with a reason; the sender closes the link after it.
    #[prost(message, tag = "3")]
    Refuse(Refuse),
    /// The dialer's proof (dialer to acceptor), sent first.
    #[prost(message, tag = "4")]
    Confirm(Confirm),
    /// Every cluster the sender knows (hubs send it).
    #[prost(message, tag = "5")]
    PeerVector(PeerVector),
    /// Asks for everything newer than the given per-origin positions.
    #[prost(message, tag = "6")]
    SyncRequest(SyncRequest),
    /// A batch of records of one origin.
    #[prost(message, tag = "7")]
    Records(Records),
    /// Acknowledges `Records` frames up to a sequence number (flow control).
    #[prost(message, tag = "8")]
    Ack(Ack),
    /// The answer to a `SyncRequest` is complete.
    #[prost(message, tag = "9")]
    SyncDone(SyncDone),
    /// Per-origin summary for anti-entropy.
    #[prost(message, tag = "10")]
    Digest(Digest),
    /// Asks for the records of the buckets of one origin whose hashes differ.
    #[prost(message, tag = "11")]
    RepairRequest(RepairRequest),
    /// Ends the records answering a `RepairRequest`.
    #[prost(message, tag = "12")]
    RepairDone(RepairDone),
    /// Keeps an idle link alive.
    #[prost(message, tag = "13")]
    Keepalive(Keepalive),
    /// Closes a link on purpose (shutdown, duplicate link).
    #[prost(message, tag = "14")]
    Goodbye(Goodbye),
    /// Completes the handshake (acceptor to dialer): the dialer's proof verified, and the
    /// acceptor's own proof.
    #[prost(message, tag = "15")]
    Accept(Accept),
}

/// A cluster's role on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WireRole {
    /// Not set (refused).
    Unspecified = 0,
    /// A hub.
    Hub = 1,
    /// A spoke.
    Spoke = 2,
    /// A standalone cluster (refused: it takes no part in ILS).
    Standalone = 3,
}

/// Why a link was refused or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RefuseReason {
    /// A reason this build does not know.
    Unspecified = 0,
    /// The peer's cluster ID is ours, or belongs to another cluster already in the network.
    DuplicateClusterId = 1,
    /// No protocol version in common.
    VersionMismatch = 2,
    /// The authentication proof or certificate was refused.
    BadAuth = 3,
    /// A spoke or a hub tried to join through a cluster that is not a hub.
    NotAHub = 4,
    /// The role is not allowed on this link (a standalone cluster, a spoke dialing a spoke).
    RoleNotAllowed = 5,
    /// The peer broke the protocol (bad message, bad value, message out of order).
    ProtocolError = 6,
    /// A second link to the same cluster; the other one is kept.
    DuplicateLink = 7,
    /// The sender is shutting down.
    ShuttingDown = 8,
    /// The peer did not read fast enough and its queue overflowed.
    Overloaded = 9,
}

/// A cluster's state in the peer vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WirePeerState {
    /// Not known.
    Unknown = 0,
    /// Its link to its hub (or to the reporting hub) is up.
    Up = 1,
    /// Its link is down.
    Down = 2,
}

/// Opens a link: who the dialer is and which versions it speaks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    /// Oldest protocol version the dialer speaks.
    #[prost(uint32, tag = "1")]
    pub min_version: u32,
    /// Newest protocol version the dialer speaks.
    #[prost(uint32, tag = "2")]
    pub max_version: u32,
    /// The dialer's cluster ID.
    #[prost(string, tag = "3")]
    pub cluster_id: String,
    /// The dialer's cluster name (the name TLS checks).
    #[prost(string, tag = "4")]
    pub cluster_name: String,
    /// The dialer's role.
    #[prost(enumeration = "WireRole", tag = "5")]
    pub role: i32,
    /// The route strings the dialer advertises.
    #[prost(string, repeated, tag = "6")]
    pub route_strings: Vec<String>,
    /// A fresh random 32-byte challenge for the acceptor's proof.
    #[prost(bytes = "vec", tag = "7")]
    pub nonce: Vec<u8>,
    // Tag 8 is reserved (an early draft carried a proof here; a Hello never carries one).
    /// A random number per process start: tells a restarted peer from a second link.
    #[prost(uint64, tag = "9")]
    pub instance: u64,
    /// Addresses other clusters can dial this cluster on (hubs).
    #[prost(string, repeated, tag = "10")]
    pub addresses: Vec<String>,
}

/// Answers a Hello: the acceptor's identity and its challenge. It carries no proof: the
/// dialer proves first (in `Confirm`), so a peer that does not know the password never obtains
/// one to guess against.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Welcome {
    /// The protocol version chosen for this link.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The acceptor's cluster ID.
    #[prost(string, tag = "2")]
    pub cluster_id: String,
    /// The acceptor's cluster name.
    #[prost(string, tag = "3")]
    pub cluster_name: String,
    /// The acceptor's role.
    #[prost(enumeration = "WireRole", tag = "4")]
    pub role: i32,
    /// The route strings the acceptor advertises.
    #[prost(string, repeated, tag = "5")]
    pub route_strings: Vec<String>,
    /// A fresh random 32-byte challenge for the dialer's proof.
    #[prost(bytes = "vec", tag = "6")]
    pub nonce: Vec<u8>,
    // Tag 7 is reserved (an early draft carried the acceptor's proof here).
    /// The acceptor's instance number.
    #[prost(uint64, tag = "8")]
    pub instance: u64,
    /// Addresses other clusters can dial the acceptor on.
    #[prost(string, repeated, tag = "9")]
    pub addresses: Vec<String>,
}

/// Refuses a link.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Refuse {
    /// The reason code.
    #[prost(enumeration = "RefuseReason", tag = "1")]
    pub reason: i32,
    /// A sentence for the operator's log.
    #[prost(string, tag = "2")]
    pub detail: String,
    /// With `BAD_AUTH`: the specific authentication failure (`wrong_password`,
    /// `untrusted_certificate`, ...), so both sides count the same code.
    #[prost(string, tag = "3")]
    pub auth_code: String,
}

/// The dialer's proof over both nonces (empty when its authentication mode uses no password).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Confirm {
    /// The dialer's proof.
    #[prost(bytes = "vec", tag = "1")]
    pub auth_proof: Vec<u8>,
}

/// Completes the handshake: the acceptor verified the dialer's proof and sends its own.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Accept {
    /// The acceptor's proof over both nonces (empty when its mode uses no password).
    #[prost(bytes = "vec", tag = "1")]
    pub auth_proof: Vec<u8>,
}

/// The peer vector: every cluster the sender knows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerVector {
    /// One entry per cluster, the sender's own included.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<PeerEntry>,
}

/// One cluster in the peer vector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerEntry {
    /// Cluster ID.
    #[prost(string, tag = "1")]
    pub cluster_id: String,
    /// Cluster name.
    #[prost(string, tag = "2")]
    pub cluster_name: String,
    /// Role.
    #[prost(enumeration = "WireRole", tag = "3")]
    pub role: i32,
    /// Addresses it can be dialed on.
    #[prost(string, repeated, tag = "4")]
    pub addresses: Vec<String>,
    /// Route strings it advertises.
    #[prost(string, repeated, tag = "5")]
    pub route_strings: Vec<String>,
    /// The hub a spoke is attached to (a hub names itself).
    #[prost(string, tag = "6")]
    pub hub_id: String,
    /// Up or down, as its hub last saw it.
    #[prost(enumeration = "WirePeerState", tag = "7")]
    pub state: i32,
    /// Milliseconds since the reporter last heard from it (0: just now or unknown).
    #[prost(uint64, tag = "8")]
    pub seen_ago_ms: u64,
    /// Last-writer-wins stamp: an entry with a higher stamp replaces a lower one.
    #[prost(uint64, tag = "9")]
    pub stamp: u64,
}

/// A per-origin position: the highest version the requester holds from that origin.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Position {
    /// Origin cluster ID.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// Highest version held.
    #[prost(uint64, tag = "2")]
    pub version: u64,
}

/// Asks for every record newer than the given positions (origins not listed: from zero).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncRequest {
    /// The requester's positions, one per origin it holds records of (its own included).
    #[prost(message, repeated, tag = "1")]
    pub positions: Vec<Position>,
}

/// A batch of records of one origin, in version order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Records {
    /// Link-local sequence number, acknowledged by `Ack`.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// Origin cluster ID of every record in the batch.
    #[prost(string, tag = "2")]
    pub origin: String,
    /// The route strings the records refer to (index + 1).
    #[prost(string, repeated, tag = "3")]
    pub routes: Vec<String>,
    /// The records.
    #[prost(message, repeated, tag = "4")]
    pub records: Vec<Record>,
    /// Part of an answer to a `RepairRequest` (versions need not be ascending).
    #[prost(bool, tag = "5")]
    pub repair: bool,
}

/// One record: a directory URI of its origin, or the tombstone of a removed one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// The origin's version of this change.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The directory URI, canonical `user@host`.
    #[prost(string, tag = "2")]
    pub uri: String,
    /// Index + 1 into the batch's `routes`; 0 marks a tombstone (the URI was removed).
    #[prost(uint32, tag = "3")]
    pub route: u32,
}

/// Acknowledges every `Records` frame up to `seq`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    /// Highest sequence number applied.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
}

/// The answer to a `SyncRequest` is complete: the sender's positions for what it relays.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncDone {
    /// Positions the requester now holds.
    #[prost(message, repeated, tag = "1")]
    pub positions: Vec<Position>,
}

/// Anti-entropy summary: one entry per origin the sender relays to the receiver.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Digest {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<DigestEntry>,
}

/// The summary of one origin's live records.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DigestEntry {
    /// Origin cluster ID.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// Highest version seen from the origin.
    #[prost(uint64, tag = "2")]
    pub max_version: u64,
    /// Number of live (not removed) records.
    #[prost(uint64, tag = "3")]
    pub count: u64,
    /// Order-independent hash of the live records' (URI, version) pairs.
    #[prost(fixed64, tag = "4")]
    pub hash: u64,
}

/// Asks for the records of the buckets whose hashes differ from the requester's.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepairRequest {
    /// Origin cluster ID.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// The requester's hash of each bucket (64 buckets, by URI hash).
    #[prost(fixed64, repeated, tag = "2")]
    pub bucket_hashes: Vec<u64>,
}

/// Ends a repair: records of the listed buckets not sent are gone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepairDone {
    /// Origin cluster ID.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// The buckets that were sent in full.
    #[prost(uint32, repeated, tag = "2")]
    pub buckets: Vec<u32>,
    /// The sender's highest version of the origin when the repair started.
    #[prost(uint64, tag = "3")]
    pub max_version: u64,
}

/// Keeps an idle link alive.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Keepalive {}

/// Closes a link on purpose.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Goodbye {
    /// Why.
    #[prost(enumeration = "RefuseReason", tag = "1")]
    pub reason: i32,
    /// A sentence for the log.
    #[prost(string, tag = "2")]
    pub detail: String,
}

// === conversions ===

impl Frame {
    /// The message name, for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "Hello",
            Self::Welcome(_) => "Welcome",
            Self::Refuse(_) => "Refuse",
            Self::Confirm(_) => "Confirm",
            Self::PeerVector(_) => "PeerVector",
            Self::SyncRequest(_) => "SyncRequest",
            Self::Records(_) => "Records",
            Self::Ack(_) => "Ack",
            Self::SyncDone(_) => "SyncDone",
            Self::Digest(_) => "Digest",
            Self::RepairRequest(_) => "RepairRequest",
            Self::RepairDone(_) => "RepairDone",
            Self::Keepalive(_) => "Keepalive",
            Self::Goodbye(_) => "Goodbye",
            Self::Accept(_) => "Accept",
        }
    }
}

impl WireRole {
    /// The wire value of a role.
    pub fn from_role(role: Role) -> Self {
        match role {
            Role::Hub => Self::Hub,
            Role::Spoke => Self::Spoke,
            Role::Standalone => Self::Standalone,
        }
    }

    /// The role of a wire value; `None` for an unknown or unset value.
    pub fn to_role(value: i32) -> Option<Role> {
        match Self::try_from(value).ok()? {
            Self::Hub => Some(Role::Hub),
            Self::Spoke => Some(Role::Spoke),
            Self::Standalone => Some(Role::Standalone),
            Self::Unspecified => None,
        }
    }
}

impl RefuseReason {
    /// A wire value as a reason (unknown values become `Unspecified`).
    pub fn from_wire(value: i32) -> Self {
        Self::try_from(value).unwrap_or(Self::Unspecified)
    }

    /// A short, stable name for logs and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::DuplicateClusterId => "duplicate_cluster_id",
            Self::VersionMismatch => "version_mismatch",
            Self::BadAuth => "bad_auth",
            Self::NotAHub => "not_a_hub",
            Self::RoleNotAllowed => "role_not_allowed",
            Self::ProtocolError => "protocol_error",
            Self::DuplicateLink => "duplicate_link",
            Self::ShuttingDown => "shutting_down",
            Self::Overloaded => "overloaded",
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
