//! The handshake's inputs and the authentication hook.
//!
//! A link opens with four messages: `Hello` (dialer: identity, nonce), `Welcome` (acceptor:
//! identity, nonce), `Confirm` (dialer: its proof), `Accept` (acceptor: its proof). The dialer
//! proves first; the acceptor verifies that proof before it sends its own, so a peer that does
//! not know the password never obtains a proof to guess against offline. Each proof covers both
//! nonces (and, inside TLS, the session's exported keying material), so a proof can be neither
//! replayed nor reflected. What a proof *is* (a password HMAC bound to the TLS session, nothing
//! at all for certificate-only links) is the [`Authenticator`]'s business: the session calls it
//! at the right moments and turns its refusals into `Refuse` frames with reason `BadAuth` and
//! the failure's code.

use dialplan::{ClusterId, Role, RouteString};

/// Length of a handshake nonce, in bytes.
pub const NONCE_LEN: usize = 32;

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
    /// The remote address, as text (`ip:port`).
    pub remote: String,
    /// Set when the link runs inside TLS.
    pub tls: Option<TlsInfo>,
    /// The link arrived on the password-only listener (CUCM's port 7502): it is authenticated
    /// by the network password alone, whatever the edge's authentication mode.
    pub password_only: bool,
}

/// What the TLS layer established about a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Keying material exported from the TLS session (RFC 5705), to bind proofs to it.
    pub channel_binding: Vec<u8>,
    /// The peer's certificate chain (DER, end-entity first); empty when it presented none.
    pub peer_chain: Vec<Vec<u8>>,
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

/// Why the authenticator refused a peer. The labels are the auth module's stable codes
/// ([`crate::auth::AuthError::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The password proof does not match.
    WrongPassword,
    /// The password is right but the proof is bound to another TLS session (a relay).
    ChannelBindingMismatch,
    /// A proof of the wrong length.
    MalformedProof,
    /// A password proof was required and none was sent.
    MissingProof,
    /// This edge's mode needs a password and none is configured.
    PasswordNotConfigured,
    /// Password authentication over an unencrypted link without the operator's opt-in.
    PlaintextNotAllowed,
    /// The peer presented no certificate where one is required.
    NoCertificate,
    /// The peer's certificate is neither pinned nor signed by a trusted CA.
    UntrustedCertificate,
    /// A CA-signed peer not in the peer vector, in a mode without password.
    UnknownPeer,
    /// The peer's certificate lacks serverAuth or clientAuth extended key usage.
    MissingExtendedKeyUsage,
    /// The certificate's name does not match the peer's cluster name.
    NameMismatch,
    /// The peer's certificate has expired.
    CertificateExpired,
    /// The peer's certificate is not yet valid.
    CertificateNotYetValid,
    /// The peer's certificate could not be parsed.
    BadCertificate,
    /// Too many failures from this address lately.
    Throttled,
    /// Another failure of the TLS layer.
    Tls,
    /// A failure this build has no code for (a newer peer's).
    Other,
}

impl AuthFailure {
    const ALL: [Self; 17] = [
        Self::WrongPassword,
        Self::ChannelBindingMismatch,
        Self::MalformedProof,
        Self::MissingProof,
        Self::PasswordNotConfigured,
        Self::PlaintextNotAllowed,
        Self::NoCertificate,
        Self::UntrustedCertificate,
        Self::UnknownPeer,
        Self::MissingExtendedKeyUsage,
        Self::NameMismatch,
        Self::CertificateExpired,
        Self::CertificateNotYetValid,
        Self::BadCertificate,
        Self::Throttled,
        Self::Tls,
        Self::Other,
    ];

    /// A short, stable name for logs and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::ChannelBindingMismatch => "channel_binding_mismatch",
            Self::MalformedProof => "malformed_proof",
            Self::MissingProof => "missing_proof",
            Self::PasswordNotConfigured => "password_not_configured",
            Self::PlaintextNotAllowed => "plaintext_password_refused",
            Self::NoCertificate => "no_certificate",
            Self::UntrustedCertificate => "untrusted_certificate",
            Self::UnknownPeer => "unknown_peer",
            Self::MissingExtendedKeyUsage => "missing_eku",
            Self::NameMismatch => "name_mismatch",
            Self::CertificateExpired => "expired_certificate",
            Self::CertificateNotYetValid => "certificate_not_yet_valid",
            Self::BadCertificate => "bad_certificate",
            Self::Throttled => "throttled",
            Self::Tls => "tls",
            Self::Other => "other",
        }
    }

    /// The failure a label names ([`Other`](Self::Other) for an unknown one).
    pub fn from_label(label: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|f| f.label() == label)
            .unwrap_or(Self::Other)
    }

    /// Whether the failure counts against the source address (a failed credential, not a
    /// local configuration problem).
    pub fn counts_as_failure(self) -> bool {
        !matches!(self, Self::PasswordNotConfigured | Self::Throttled)
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// An authentication refusal: what failed and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure}: {detail}")]
pub struct AuthError {
    /// What failed.
    pub failure: AuthFailure,
    /// The specifics, for the operator (never the secret itself).
    pub detail: String,
}

impl AuthError {
    /// A refusal with its sentence.
    pub fn new(failure: AuthFailure, detail: impl Into<String>) -> Self {
        Self {
            failure,
            detail: detail.into(),
        }
    }
}

/// What [`Authenticator::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admission {
    /// Password proofs are exchanged on this link (`Confirm` and `Accept` carry them).
    pub password_required: bool,
}

/// The authentication hook called during the handshake.
///
/// Calls happen with the node's lock held: no I/O, no blocking. Order on each side:
/// [`admit`](Self::admit) once the peer named itself; then, when the admission requires the
/// password, the dialer [`prove`](Self::prove)s (in `Confirm`), the acceptor
/// [`verify`](Self::verify)s it and only then proves (in `Accept`), and the dialer verifies;
/// finally [`established`](Self::established).
pub trait Authenticator: Send + Sync {
    /// Checks what the transport established about the peer that just named itself
    /// (certificate, its name, the transport itself) and says whether proofs are exchanged.
    fn admit(&self, ctx: &AuthContext<'_>) -> Result<Admission, AuthError>;

    /// Our proof for this link.
    fn prove(&self, ctx: &AuthContext<'_>) -> Result<Vec<u8>, AuthError>;

    /// Checks the peer's proof (called only when the admission requires the password).
    fn verify(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<(), AuthError>;

    /// The handshake completed. Returns the peer's certificate (DER) when the password alone
    /// vouched for it and it is now pinned: the node keeps it with the peer vector.
    fn established(&self, _ctx: &AuthContext<'_>) -> Option<Vec<u8>> {
        None
    }
}

/// Accepts every peer and sends empty proofs: for tests and for links whose transport has
/// already authenticated the peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAuthenticator;

impl Authenticator for OpenAuthenticator {
    fn admit(&self, _: &AuthContext<'_>) -> Result<Admission, AuthError> {
        Ok(Admission::default())
    }

    fn prove(&self, _: &AuthContext<'_>) -> Result<Vec<u8>, AuthError> {
        Ok(Vec::new())
    }

    fn verify(&self, _: &AuthContext<'_>, _: &[u8]) -> Result<(), AuthError> {
        Ok(())
    }
}

/// A fresh 32-byte nonce from the system's secure random source.
pub fn fresh_nonce() -> [u8; NONCE_LEN] {
    crate::auth::Nonce::random().0
}
