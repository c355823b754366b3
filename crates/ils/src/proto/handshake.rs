//! The handshake's inputs and the authentication hook.
//!
//! A link opens with three messages: `Hello` (dialer), `Welcome` (acceptor), `Confirm`
//! (dialer). Each side sends a fresh nonce; each side's proof covers both nonces, so a proof
//! can be neither replayed nor reflected. What a proof *is* (a password HMAC bound to the TLS
//! session, nothing at all for certificate-only links) is the [`Authenticator`]'s business:
//! the session only calls it at the right moments and turns its refusals into `Refuse`
//! frames with reason `BadAuth`.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use dialplan::{ClusterId, Role, RouteString};

/// Which end of a link we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We opened the connection and send `Hello`.
    Dialer,
    /// We accepted the connection and answer with `Welcome`.
    Acceptor,
}

/// What the transport knows about a link: for the authenticator and the logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The remote address, as text.
    pub remote: String,
    /// Set when the link runs inside TLS.
    pub tls: Option<TlsInfo>,
}

/// What the TLS layer established about a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Keying material exported from the TLS session (RFC 5705), to bind proofs to it.
    pub channel_binding: Vec<u8>,
    /// The names in the peer's verified certificate (subject CN, then DNS SANs); empty when
    /// the peer presented none.
    pub peer_names: Vec<String>,
}

/// Who we are, as the handshake announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Our cluster ID.
    pub cluster_id: ClusterId,
    /// Our cluster name (the name TLS certificates carry).
    pub cluster_name: String,
    /// Our role.
    pub role: Role,
    /// The route strings we advertise.
    pub route_strings: Vec<RouteString>,
    /// Addresses others can dial us on.
    pub addresses: Vec<String>,
    /// A random number per process start.
    pub instance: u64,
}

/// Who the peer says it is, from its `Hello` or `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// The peer's cluster ID.
    pub cluster_id: ClusterId,
    /// The peer's cluster name.
    pub cluster_name: String,
    /// The peer's role.
    pub role: Role,
    /// The route strings the peer advertises (invalid ones are dropped).
    pub route_strings: Vec<RouteString>,
    /// Addresses the peer can be dialed on.
    pub addresses: Vec<String>,
    /// The peer's instance number.
    pub instance: u64,
    /// The protocol version of the link.
    pub version: u32,
}

/// Everything an authenticator may look at.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// Our end of the link.
    pub side: Side,
    /// The transport's facts.
    pub link: &'a LinkInfo,
    /// The dialer's nonce (from `Hello`).
    pub dialer_nonce: &'a [u8],
    /// The acceptor's nonce (from `Welcome`).
    pub acceptor_nonce: &'a [u8],
    /// Our cluster ID.
    pub local: &'a ClusterId,
    /// The peer's claimed identity.
    pub peer: &'a PeerHello,
    /// The cluster name our peer vector already holds for the peer's cluster ID, if any (the
    /// seed's "password first, then TLS" bootstrap relies on it).
    pub known_name: Option<&'a str>,
}

/// Why the authenticator refused a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The password proof does not match.
    WrongPassword,
    /// A proof was required and none was sent.
    MissingProof,
    /// Password authentication over an unencrypted link without the operator's opt-in.
    PlaintextNotAllowed,
    /// The peer's certificate is neither pinned nor signed by a trusted CA.
    UntrustedCertificate,
    /// The peer's certificate lacks serverAuth or clientAuth extended key usage.
    MissingExtendedKeyUsage,
    /// The certificate's name does not match the peer's cluster name.
    NameMismatch,
    /// The peer's certificate has expired or is not yet valid.
    CertificateExpired,
    /// Too many failures from this address lately.
    Throttled,
}

impl AuthFailure {
    /// A short, stable name for logs and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::MissingProof => "missing_proof",
            Self::PlaintextNotAllowed => "plaintext_not_allowed",
            Self::UntrustedCertificate => "untrusted_certificate",
            Self::MissingExtendedKeyUsage => "missing_eku",
            Self::NameMismatch => "name_mismatch",
            Self::CertificateExpired => "certificate_expired",
            Self::Throttled => "throttled",
        }
    }
}

/// An authentication refusal: what failed and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", failure.label())]
pub struct AuthError {
    /// What failed.
    pub failure: AuthFailure,
    /// The specifics, for the operator (never the secret itself).
    pub detail: String,
}

/// The authentication hook called during the handshake.
///
/// Calls happen with the node's lock held: no I/O, no blocking.
pub trait Authenticator: Send + Sync {
    /// The proof the dialer puts into its `Hello` (before it knows the peer).
    fn hello_proof(&self, _link: &LinkInfo, _dialer_nonce: &[u8]) -> Vec<u8> {
        Vec::new()
    }

    /// Acceptor: checks the `Hello`'s proof and returns the proof for the `Welcome`.
    fn check_hello(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<Vec<u8>, AuthError>;

    /// Dialer: checks the `Welcome`'s proof and returns the proof for the `Confirm`.
    fn check_welcome(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<Vec<u8>, AuthError>;

    /// Acceptor: checks the `Confirm`'s proof.
    fn check_confirm(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<(), AuthError>;
}

/// Accepts every peer and sends empty proofs: for tests and for links whose transport has
/// already authenticated the peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAuthenticator;

impl Authenticator for OpenAuthenticator {
    fn check_hello(&self, _: &AuthContext<'_>, _: &[u8]) -> Result<Vec<u8>, AuthError> {
        Ok(Vec::new())
    }

    fn check_welcome(&self, _: &AuthContext<'_>, _: &[u8]) -> Result<Vec<u8>, AuthError> {
        Ok(Vec::new())
    }

    fn check_confirm(&self, _: &AuthContext<'_>, _: &[u8]) -> Result<(), AuthError> {
        Ok(())
    }
}

/// A 16-byte nonce from the process's random hasher keys.
///
/// `RandomState` keys come from the operating system's random source; hashing a counter
/// with fresh keys gives values no peer can predict. An authenticator that needs
/// cryptographic randomness for more than uniqueness draws its own.
pub fn fresh_nonce() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}
