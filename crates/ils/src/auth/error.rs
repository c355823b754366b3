//! Why an ILS connection was refused, one variant per reason.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An extended key usage (EKU) that ILS requires on a peer certificate, or a combination of them
/// that is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eku {
    /// `serverAuth` (1.3.6.1.5.5.7.3.1).
    ServerAuth,
    /// `clientAuth` (1.3.6.1.5.5.7.3.2).
    ClientAuth,
    /// Both `serverAuth` and `clientAuth`.
    ServerAndClientAuth,
}

impl Eku {
    /// The usage as certificate tools spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerAuth => "serverAuth",
            Self::ClientAuth => "clientAuth",
            Self::ServerAndClientAuth => "serverAuth and clientAuth",
        }
    }

    /// The missing usages given which ones are present, or `None` when both are.
    pub fn missing(server_auth: bool, client_auth: bool) -> Option<Self> {
        match (server_auth, client_auth) {
            (true, true) => None,
            (true, false) => Some(Self::ClientAuth),
            (false, true) => Some(Self::ServerAuth),
            (false, false) => Some(Self::ServerAndClientAuth),
        }
    }
}

impl fmt::Display for Eku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ILS peer, a certificate or a password was refused, or why the local identity or trust
/// store could not be loaded.
///
/// Every variant has a short stable [`code`](Self::code) for logs and metrics counters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer's password proof did not verify: its network password differs from ours.
    #[error(
        "wrong network password: the peer's password proof does not match this edge's password"
    )]
    WrongPassword,
    /// The peer's password proof verifies without the TLS channel binding but not with it: the
    /// password is right, yet the two ends see different TLS sessions, so something relays the
    /// connection (a man in the middle with its own certificate).
    #[error(
        "password proof is bound to a different TLS session: the connection is relayed by a third party"
    )]
    ChannelBindingMismatch,
    /// The peer sent a password proof of the wrong length.
    #[error("malformed password proof: {len} bytes, expected {expected}")]
    MalformedProof {
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A password is required by the authentication mode but none is configured.
    #[error("authentication mode {mode} needs a network password, and none is configured")]
    PasswordNotConfigured {
        /// The configured mode.
        mode: super::AuthMode,
    },
    /// The certificate is neither pinned in the trust store nor signed by a trusted CA.
    #[error("untrusted certificate for {subject}: {reason}")]
    UntrustedCertificate {
        /// The certificate's names (SAN dNSNames, or CN).
        subject: String,
        /// What the trust check found.
        reason: String,
    },
    /// A trusted certificate names a cluster that is not in the peer vector, in a mode without
    /// password; the seed's bootstrap (TLS + password once) admits it.
    #[error(
        "certificate for {name:?} is CA-signed but cluster {cluster_id:?} is not in the peer vector: join once with TLS + password"
    )]
    UnknownPeer {
        /// The cluster ID the peer claims.
        cluster_id: String,
        /// The cluster name the peer claims.
        name: String,
    },
    /// The certificate lacks an extended key usage that ILS requires.
    #[error("certificate for {subject} lacks extended key usage {missing}")]
    MissingEku {
        /// The certificate's names.
        subject: String,
        /// What is missing.
        missing: Eku,
    },
    /// The certificate names another cluster than the one expected.
    #[error("certificate name mismatch: expected {expected:?}, certificate presents {presented:?}")]
    NameMismatch {
        /// The cluster name expected (peer vector, or the name the peer claims).
        expected: String,
        /// The names the certificate carries (SAN dNSNames and IP addresses, or CN).
        presented: Vec<String>,
    },
    /// The certificate's validity ended.
    #[error("certificate for {subject} expired at {not_after} (unix time)")]
    ExpiredCertificate {
        /// The certificate's names.
        subject: String,
        /// End of validity, seconds since the Unix epoch.
        not_after: i64,
    },
    /// The certificate's validity has not begun.
    #[error("certificate for {subject} is not valid before {not_before} (unix time)")]
    CertificateNotYetValid {
        /// The certificate's names.
        subject: String,
        /// Start of validity, seconds since the Unix epoch.
        not_before: i64,
    },
    /// The certificate could not be parsed.
    #[error("malformed certificate: {reason}")]
    BadCertificate {
        /// The parser's complaint.
        reason: String,
    },
    /// Password authentication over plain TCP without `allow_plaintext_password = true`.
    #[error(
        "password authentication over unencrypted TCP refused: set allow_plaintext_password = true to allow it, or use TLS"
    )]
    PlaintextPasswordRefused,
    /// The peer presented no certificate where one is required.
    #[error("the peer presented no certificate, and mode {mode} requires one")]
    NoCertificate {
        /// The configured mode.
        mode: super::AuthMode,
    },
    /// A PEM file holds nothing usable.
    #[error("bad PEM file {path}: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The local identity file names another cluster than the one configured.
    #[error(
        "identity certificate {path} is for {presented:?}, but this cluster's name is {expected:?}: remove it to create a new one, or fix cluster_name"
    )]
    IdentityName {
        /// The certificate file.
        path: PathBuf,
        /// The configured cluster name.
        expected: String,
        /// The names in the file's certificate.
        presented: Vec<String>,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Too many recent failures from this address; refused without trying.
    #[error("too many failed attempts from {addr}: refused for another {retry_after:?}")]
    Throttled {
        /// The source address (an IPv6 address stands for its /64).
        addr: IpAddr,
        /// How long the refusal lasts.
        retry_after: Duration,
    },
    /// The peer ended the TLS handshake with an alert: it refused our certificate or offer.
    #[error("the peer refused the TLS handshake (alert {alert})")]
    RefusedByPeer {
        /// The TLS alert as rustls names it.
        alert: String,
    },
    /// Any other TLS failure.
    #[error("TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// The private key is unusable or does not belong to the certificate.
    #[error("unusable private key: {reason}")]
    BadPrivateKey {
        /// What is wrong with it.
        reason: String,
    },
    /// Creating a key or certificate failed.
    #[error("creating the identity failed: {0}")]
    KeyGeneration(String),
}

impl AuthError {
    /// A short stable identifier of the refusal, for logs and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::ChannelBindingMismatch => "channel_binding_mismatch",
            Self::MalformedProof { .. } => "malformed_proof",
            Self::PasswordNotConfigured { .. } => "password_not_configured",
            Self::UntrustedCertificate { .. } => "untrusted_certificate",
            Self::UnknownPeer { .. } => "unknown_peer",
            Self::MissingEku { .. } => "missing_eku",
            Self::NameMismatch { .. } => "name_mismatch",
            Self::ExpiredCertificate { .. } => "expired_certificate",
            Self::CertificateNotYetValid { .. } => "certificate_not_yet_valid",
            Self::BadCertificate { .. } => "bad_certificate",
            Self::PlaintextPasswordRefused => "plaintext_password_refused",
            Self::NoCertificate { .. } => "no_certificate",
            Self::BadPem { .. } => "bad_pem",
            Self::IdentityName { .. } => "identity_name",
            Self::Io { .. } => "io",
            Self::Throttled { .. } => "throttled",
            Self::RefusedByPeer { .. } => "refused_by_peer",
            Self::Tls(_) => "tls",
            Self::BadPrivateKey { .. } => "bad_private_key",
            Self::KeyGeneration(_) => "key_generation",
        }
    }

    /// Whether this refusal should count against the source address in a
    /// [`FailureThrottle`](super::FailureThrottle): a failed credential, not a local problem.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            Self::PasswordNotConfigured { .. }
                | Self::BadPem { .. }
                | Self::IdentityName { .. }
                | Self::Io { .. }
                | Self::Throttled { .. }
                | Self::BadPrivateKey { .. }
                | Self::KeyGeneration(_)
        )
    }

    /// Recovers the refusal from the error of a TLS handshake or of a read on a TLS stream
    /// (tokio-rustls reports both as [`io::Error`]).
    ///
    /// A refusal by this edge's own verifier comes back as its specific variant; a refusal by the
    /// peer as [`AuthError::RefusedByPeer`]; any other TLS error as [`AuthError::Tls`]. Returns
    /// `None` for an I/O error that is not about TLS (such as a reset connection).
    pub fn from_tls_io(err: &io::Error) -> Option<Self> {
        let inner = err.get_ref()?;
        let tls = inner.downcast_ref::<rustls::Error>()?;
        Some(Self::from_rustls(tls))
    }

    /// Maps a rustls error to the refusal it carries.
    pub fn from_rustls(err: &rustls::Error) -> Self {
        if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = err
            && let Some(own) = other.0.downcast_ref::<Self>()
        {
            return own.clone_refusal();
        }
        match err {
            rustls::Error::AlertReceived(alert) => Self::RefusedByPeer {
                alert: format!("{alert:?}"),
            },
            rustls::Error::NoCertificatesPresented => Self::NoCertificate {
                mode: super::AuthMode::Tls,
            },
            other => Self::Tls(other.clone()),
        }
    }

    /// Wraps the refusal so that a rustls verifier can return it and [`Self::from_rustls`] can
    /// recover it.
    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(self),
        )))
    }

    /// A copy of a refusal (I/O errors keep their kind and message).
    fn clone_refusal(&self) -> Self {
        match self {
            Self::WrongPassword => Self::WrongPassword,
            Self::ChannelBindingMismatch => Self::ChannelBindingMismatch,
            Self::MalformedProof { len, expected } => Self::MalformedProof {
                len: *len,
                expected: *expected,
            },
            Self::PasswordNotConfigured { mode } => Self::PasswordNotConfigured { mode: *mode },
            Self::UntrustedCertificate { subject, reason } => Self::UntrustedCertificate {
                subject: subject.clone(),
                reason: reason.clone(),
            },
            Self::UnknownPeer { cluster_id, name } => Self::UnknownPeer {
                cluster_id: cluster_id.clone(),
                name: name.clone(),
            },
            Self::MissingEku { subject, missing } => Self::MissingEku {
                subject: subject.clone(),
                missing: *missing,
            },
            Self::NameMismatch {
                expected,
                presented,
            } => Self::NameMismatch {
                expected: expected.clone(),
                presented: presented.clone(),
            },
            Self::ExpiredCertificate { subject, not_after } => Self::ExpiredCertificate {
                subject: subject.clone(),
                not_after: *not_after,
            },
            Self::CertificateNotYetValid {
                subject,
                not_before,
            } => Self::CertificateNotYetValid {
                subject: subject.clone(),
                not_before: *not_before,
            },
            Self::BadCertificate { reason } => Self::BadCertificate {
                reason: reason.clone(),
            },
            Self::PlaintextPasswordRefused => Self::PlaintextPasswordRefused,
            Self::NoCertificate { mode } => Self::NoCertificate { mode: *mode },
            Self::BadPem { path, reason } => Self::BadPem {
                path: path.clone(),
                reason: reason.clone(),
            },
            Self::IdentityName {
                path,
                expected,
                presented,
            } => Self::IdentityName {
                path: path.clone(),
                expected: expected.clone(),
                presented: presented.clone(),
            },
            Self::Io { path, source } => Self::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::Throttled { addr, retry_after } => Self::Throttled {
                addr: *addr,
                retry_after: *retry_after,
            },
            Self::RefusedByPeer { alert } => Self::RefusedByPeer {
                alert: alert.clone(),
            },
            Self::Tls(e) => Self::Tls(e.clone()),
            Self::BadPrivateKey { reason } => Self::BadPrivateKey {
                reason: reason.clone(),
            },
            Self::KeyGeneration(s) => Self::KeyGeneration(s.clone()),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
