//! Authentication of ILS peers: password, TLS, and TLS + password.
//!
//! # The three methods
//!
//! | [`AuthMode`] | TLS layer | after the Hello |
//! |---|---|---|
//! | `Password` | TLS accepting any certificate (or plain TCP with `allow_plaintext_password = true`) | both sides prove the network password, bound to the TLS session |
//! | `Tls` | mutual TLS: each certificate pinned or CA-signed, `serverAuth` + `clientAuth`, valid | the certificate must name the peer's cluster name from the peer vector (for a peer not yet in it, only a pinned certificate is accepted, against the name it claims) |
//! | `TlsPassword` | mutual TLS: each certificate valid with `serverAuth` + `clientAuth`; a certificate that is neither pinned nor CA-signed (a self-signed identity made on first start) is let through to the password | the certificate must name the peer's cluster name (from the peer vector, or the name it claims); the password proof is required in every case, and vouches for a certificate nothing else trusts, which is then pinned |
//!
//! The seed's bootstrap: join once with `Password` (or `TlsPassword`); on success the peer's
//! certificate is pinned ([`Authenticator::pin_after_password`]) and stored with the peer vector,
//! so the peer may later connect with `Tls` alone.
//!
//! # How a session uses this module
//!
//! Accepting side (the driver and the sans-IO session share the steps):
//! 1. On accept: [`FailureThrottle::check`] for the source address; refuse at once if throttled.
//! 2. TLS: [`Authenticator::acceptor`] performs the handshake; the rustls verifier refuses an
//!    untrusted, expired or EKU-less certificate here ([`AuthError::from_tls_io`] recovers the
//!    reason). Then [`TlsPeer::from_server`] gives the channel binding and the peer's chain.
//!    On plain TCP: [`Authenticator::check_transport`] with [`Transport::Plain`].
//! 3. Hello exchange: each side sends its cluster ID, cluster name and a fresh [`Nonce`].
//! 4. On the peer's Hello: [`Authenticator::admit`] with [`PeerHello`] (the claimed ID and name,
//!    the name the peer vector knows for that ID, the chain). It checks the name and tells whether
//!    a password proof is required.
//! 5. If required: the initiator sends [`Authenticator::prove`] first; the responder checks it
//!    with [`Authenticator::verify_peer`] and only then sends its own proof, which the initiator
//!    verifies. Any error is sent to the peer as a refusal and the connection closed.
//! 6. On success: [`Authenticator::pin_after_password`] pins a certificate that was trusted only
//!    by the password (store it in the peer vector: `PeerRecord::pinned_cert`), and
//!    [`FailureThrottle::record_success`]. On failure: log [`AuthError::code`], count it, and
//!    [`FailureThrottle::record_failure`] when [`AuthError::counts_as_failure`].
//!
//! The initiating side does the same with [`Authenticator::connector`],
//! [`tls::server_name`] and [`TlsPeer::from_client`].

mod cert;
mod error;
mod identity;
pub mod link;
pub mod password;
mod throttle;
pub mod tls;
mod trust;
mod verify;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use dialplan::ClusterId;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use error::{AuthError, Eku};
pub use identity::Identity;
pub use link::LinkAuthenticator;
pub use password::{ChannelBinding, NetworkKey, Nonce, PasswordProof, Side, Transcript};
pub use throttle::{FailureThrottle, ThrottleConfig};
pub use tls::TlsPeer;
pub use trust::{Fingerprint, TrustBasis, TrustStore};

/// The crypto provider used everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How peers authenticate (CUCM's "ILS authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// The network password, proven by challenge-response (CUCM's port 7502).
    Password,
    /// Mutual TLS with pinned or CA-signed certificates (CUCM's port 7501).
    Tls,
    /// Mutual TLS and the network password.
    TlsPassword,
}

impl AuthMode {
    /// The configuration spelling: `password`, `tls` or `tls-password`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Tls => "tls",
            Self::TlsPassword => "tls-password",
        }
    }

    /// Whether the mode proves the network password.
    pub fn uses_password(self) -> bool {
        matches!(self, Self::Password | Self::TlsPassword)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authentication mode name other than `password`, `tls` or `tls-password`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ILS authentication mode {0:?} (expected password, tls or tls-password)")]
pub struct UnknownAuthMode(pub String);

impl FromStr for AuthMode {
    type Err = UnknownAuthMode;
    fn from_str(s: &str) -> Result<Self, UnknownAuthMode> {
        match s {
            "password" => Ok(Self::Password),
            "tls" => Ok(Self::Tls),
            "tls-password" | "tls+password" => Ok(Self::TlsPassword),
            other => Err(UnknownAuthMode(other.to_owned())),
        }
    }
}

/// The transport a connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS.
    Tls,
    /// Plain TCP.
    Plain,
}

/// Checks a peer's certificate against the whole ILS policy: pinned or CA-signed, both
/// `serverAuth` and `clientAuth`, valid now, and naming `expected_name`.
///
/// `chain` is the peer's chain, end-entity first, as rustls reports it.
pub fn check_peer_certificate(
    chain: &[CertificateDer<'_>],
    expected_name: &str,
    trust: &TrustStore,
) -> Result<TrustBasis, AuthError> {
    let (basis, facts) = trust.verify_facts(chain, UnixTime::now())?;
    facts.check_name(expected_name)?;
    Ok(basis)
}

/// What a peer's Hello tells, with what this edge knows about it.
#[derive(Debug, Clone, Copy)]
pub struct PeerHello<'a> {
    /// The transport of the connection.
    pub transport: Transport,
    /// The peer's certificate chain, end-entity first (empty when none was presented).
    pub chain: &'a [CertificateDer<'a>],
    /// The cluster ID the peer claims.
    pub cluster_id: &'a ClusterId,
    /// The cluster name the peer claims.
    pub claimed_name: &'a str,
    /// The cluster name the peer vector holds for that cluster ID, if the peer is known.
    pub known_name: Option<&'a str>,
}

/// The result of a successful [`Authenticator::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The peer must still prove the network password.
    pub password_required: bool,
    /// Why the certificate is trusted, when it was checked and trusted.
    pub certificate: Option<TrustBasis>,
}

/// This edge's authentication settings and state: mode, identity, trust store, network key.
#[derive(Debug, Clone)]
pub struct Authenticator {
    mode: AuthMode,
    identity: Identity,
    trust: Arc<TrustStore>,
    key: Option<NetworkKey>,
    allow_plaintext_password: bool,
}

impl Authenticator {
    /// Builds the authenticator; derives the network key once (deliberately slow).
    ///
    /// Refuses a password mode without a password ([`AuthError::PasswordNotConfigured`]).
    pub fn new(
        mode: AuthMode,
        identity: Identity,
        trust: Arc<TrustStore>,
        password: Option<&str>,
        allow_plaintext_password: bool,
    ) -> Result<Self, AuthError> {
        let key = password.filter(|p| !p.is_empty()).map(NetworkKey::derive);
        if mode.uses_password() && key.is_none() {
            return Err(AuthError::PasswordNotConfigured { mode });
        }
        Ok(Self {
            mode,
            identity,
            trust,
            key,
            allow_plaintext_password,
        })
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The trust store (shared with the TLS verifiers).
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// This edge's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The rustls server configuration for the mode.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, AuthError> {
        tls::server_config(self.mode, &self.identity, self.trust.clone())
    }

    /// The rustls client configuration for the mode.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, AuthError> {
        tls::client_config(self.mode, &self.identity, self.trust.clone())
    }

    /// A tokio-rustls acceptor for the mode.
    pub fn acceptor(&self) -> Result<TlsAcceptor, AuthError> {
        self.server_config().map(TlsAcceptor::from)
    }

    /// A tokio-rustls connector for the mode.
    pub fn connector(&self) -> Result<TlsConnector, AuthError> {
        self.client_config().map(TlsConnector::from)
    }

    /// Whether the mode may run on `transport`: plain TCP only for `Password` with
    /// `allow_plaintext_password`. Call it before sending anything on a plain connection.
    pub fn check_transport(&self, transport: Transport) -> Result<(), AuthError> {
        match (transport, self.mode) {
            (Transport::Tls, _) => Ok(()),
            (Transport::Plain, AuthMode::Password) if self.allow_plaintext_password => Ok(()),
            (Transport::Plain, AuthMode::Password) => Err(AuthError::PlaintextPasswordRefused),
            (Transport::Plain, mode) => Err(AuthError::NoCertificate { mode }),
        }
    }

    /// Decides, on the peer's Hello, whether the peer may go on and what it must still prove.
    pub fn admit(&self, peer: &PeerHello<'_>) -> Result<Admission, AuthError> {
        self.check_transport(peer.transport)?;
        if peer.transport == Transport::Plain || self.mode == AuthMode::Password {
            let certificate = self.trust.verify(peer.chain, UnixTime::now()).ok();
            return Ok(Admission {
                password_required: true,
                certificate,
            });
        }
        if peer.chain.is_empty() {
            return Err(AuthError::NoCertificate { mode: self.mode });
        }
        let expected = peer.known_name.unwrap_or(peer.claimed_name);
        let basis = match check_peer_certificate(peer.chain, expected, &self.trust) {
            Ok(basis) => basis,
            Err(AuthError::UntrustedCertificate { .. }) if self.mode == AuthMode::TlsPassword => {
                // Nothing but the password can vouch for it (a self-signed identity): the
                // certificate must still be valid, allow both usages and name the cluster.
                let facts = cert::CertFacts::parse(&peer.chain[0])?;
                let now = i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX);
                facts.check_validity(now)?;
                facts.check_eku()?;
                facts.check_name(expected)?;
                return Ok(Admission {
                    password_required: true,
                    certificate: None,
                });
            }
            Err(e) => return Err(e),
        };
        if self.mode == AuthMode::Tls && peer.known_name.is_none() && basis == TrustBasis::CaSigned
        {
            return Err(AuthError::UnknownPeer {
                cluster_id: peer.cluster_id.to_string(),
                name: peer.claimed_name.to_owned(),
            });
        }
        Ok(Admission {
            password_required: self.mode == AuthMode::TlsPassword,
            certificate: Some(basis),
        })
    }

    /// This edge's password proof.
    pub fn prove(&self, transcript: &Transcript<'_>) -> Result<PasswordProof, AuthError> {
        Ok(self.network_key()?.prove(transcript))
    }

    /// Verifies the peer's password proof.
    pub fn verify_peer(
        &self,
        transcript: &Transcript<'_>,
        proof: &PasswordProof,
    ) -> Result<(), AuthError> {
        self.network_key()?.verify_peer(transcript, proof)
    }

    /// After the peer's password proof verified: pins its certificate when nothing but the
    /// password vouched for it (a self-signed identity), so that it is accepted with TLS alone
    /// from now on. Returns the fingerprint when a new pin was made; store the certificate with
    /// the peer vector so the pin survives a restart.
    pub fn pin_after_password(&self, chain: &[CertificateDer<'_>]) -> Option<Fingerprint> {
        let end_entity = chain.first()?;
        if self.trust.verify(chain, UnixTime::now()).is_ok() {
            return None;
        }
        Some(self.trust.pin(end_entity))
    }

    fn network_key(&self) -> Result<&NetworkKey, AuthError> {
        self.key
            .as_ref()
            .ok_or(AuthError::PasswordNotConfigured { mode: self.mode })
    }
}
