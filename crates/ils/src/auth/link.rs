//! The replication handshake's authenticator: the protocol's [`proto::Authenticator`] hook on
//! top of this module's [`Authenticator`].
//!
//! One [`LinkAuthenticator`] serves every link of a node. A link accepted on the
//! password-only listener ([`LinkInfo::password_only`](proto::LinkInfo::password_only), CUCM's
//! port 7502) is authenticated in [`AuthMode::Password`]; every other link in the edge's
//! configured mode.

use rustls_pki_types::CertificateDer;

use super::{AuthError, AuthMode, Authenticator, ChannelBinding, Nonce, PasswordProof, PeerHello};
use super::{Side, Transcript, Transport};
use crate::proto::{self, AuthContext, AuthFailure, LinkInfo};

/// The protocol's authentication hook, backed by the edge's [`Authenticator`]s.
#[derive(Debug, Clone)]
pub struct LinkAuthenticator {
    main: Authenticator,
    password_port: Option<Authenticator>,
}

impl LinkAuthenticator {
    /// `main` authenticates links in the configured mode; `password_port` (in
    /// [`AuthMode::Password`]) those accepted on the password-only listener, when a network
    /// password is configured.
    pub fn new(main: Authenticator, password_port: Option<Authenticator>) -> Self {
        Self {
            main,
            password_port,
        }
    }

    /// The authenticator of the configured mode.
    pub fn main(&self) -> &Authenticator {
        &self.main
    }

    /// The authenticator of the password-only listener, if a password is configured.
    pub fn password_port(&self) -> Option<&Authenticator> {
        self.password_port.as_ref()
    }

    fn for_link(&self, link: &LinkInfo) -> Result<&Authenticator, proto::AuthError> {
        if !link.password_only {
            return Ok(&self.main);
        }
        self.password_port.as_ref().ok_or_else(|| {
            to_proto(&AuthError::PasswordNotConfigured {
                mode: AuthMode::Password,
            })
        })
    }
}

fn chain(link: &LinkInfo) -> Vec<CertificateDer<'_>> {
    link.tls
        .iter()
        .flat_map(|t| t.peer_chain.iter())
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect()
}

fn binding(link: &LinkInfo) -> ChannelBinding {
    match &link.tls {
        Some(t) => match <[u8; 32]>::try_from(t.channel_binding.as_slice()) {
            Ok(b) => ChannelBinding::Tls(b),
            // An exporter of another length cannot match the peer's: the proof will fail.
            Err(_) => ChannelBinding::Tls([0; 32]),
        },
        None => ChannelBinding::None,
    }
}

/// The protocol's refusal for an authentication error: its code and sentence.
pub fn to_proto(e: &AuthError) -> proto::AuthError {
    proto::AuthError::new(failure(e), e.to_string())
}

/// The protocol's failure kind of an authentication error (same label as [`AuthError::code`]).
pub fn failure(e: &AuthError) -> AuthFailure {
    match e {
        AuthError::WrongPassword => AuthFailure::WrongPassword,
        AuthError::ChannelBindingMismatch => AuthFailure::ChannelBindingMismatch,
        AuthError::MalformedProof { .. } => AuthFailure::MalformedProof,
        AuthError::PasswordNotConfigured { .. } => AuthFailure::PasswordNotConfigured,
        AuthError::UntrustedCertificate { .. } => AuthFailure::UntrustedCertificate,
        AuthError::UnknownPeer { .. } => AuthFailure::UnknownPeer,
        AuthError::MissingEku { .. } => AuthFailure::MissingExtendedKeyUsage,
        AuthError::NameMismatch { .. } => AuthFailure::NameMismatch,
        AuthError::ExpiredCertificate { .. } => AuthFailure::CertificateExpired,
        AuthError::CertificateNotYetValid { .. } => AuthFailure::CertificateNotYetValid,
        AuthError::BadCertificate { .. } => AuthFailure::BadCertificate,
        AuthError::PlaintextPasswordRefused => AuthFailure::PlaintextNotAllowed,
        AuthError::NoCertificate { .. } => AuthFailure::NoCertificate,
        AuthError::Throttled { .. } => AuthFailure::Throttled,
        AuthError::RefusedByPeer { .. } | AuthError::Tls(_) => AuthFailure::Tls,
        _ => AuthFailure::Other,
    }
}

fn transcript_parts(ctx: &AuthContext<'_>) -> Result<(Side, Nonce, Nonce), proto::AuthError> {
    let (side, own, peer) = match ctx.side {
        proto::Side::Dialer => (Side::Initiator, ctx.dialer_nonce, ctx.acceptor_nonce),
        proto::Side::Acceptor => (Side::Responder, ctx.acceptor_nonce, ctx.dialer_nonce),
    };
    // The session accepts only nonces of the right length; this is a second guard.
    let bad = || {
        proto::AuthError::new(
            AuthFailure::MalformedProof,
            "handshake nonce of the wrong length",
        )
    };
    Ok((
        side,
        Nonce::from_slice(own).ok_or_else(bad)?,
        Nonce::from_slice(peer).ok_or_else(bad)?,
    ))
}

impl proto::Authenticator for LinkAuthenticator {
    fn admit(&self, ctx: &AuthContext<'_>) -> Result<proto::Admission, proto::AuthError> {
        let auth = self.for_link(ctx.link)?;
        let chain = chain(ctx.link);
        let hello = PeerHello {
            transport: if ctx.link.tls.is_some() {
                Transport::Tls
            } else {
                Transport::Plain
            },
            chain: &chain,
            cluster_id: &ctx.peer.cluster_id,
            claimed_name: &ctx.peer.cluster_name,
            known_name: ctx.known_name,
        };
        let admission = auth.admit(&hello).map_err(|e| to_proto(&e))?;
        Ok(proto::Admission {
            password_required: admission.password_required,
        })
    }

    fn prove(&self, ctx: &AuthContext<'_>) -> Result<Vec<u8>, proto::AuthError> {
        let auth = self.for_link(ctx.link)?;
        let (side, own, peer) = transcript_parts(ctx)?;
        let binding = binding(ctx.link);
        let t = Transcript {
            side,
            own_nonce: &own,
            peer_nonce: &peer,
            own_id: ctx.local,
            peer_id: &ctx.peer.cluster_id,
            binding: &binding,
        };
        let proof = auth.prove(&t).map_err(|e| to_proto(&e))?;
        Ok(proof.as_bytes().to_vec())
    }

    fn verify(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<(), proto::AuthError> {
        let auth = self.for_link(ctx.link)?;
        if proof.is_empty() {
            return Err(proto::AuthError::new(
                AuthFailure::MissingProof,
                format!(
                    "cluster {} sent no password proof, and this link's authentication ({}) \
                     requires one: is the peer configured with auth = \"tls\"?",
                    ctx.peer.cluster_id,
                    if ctx.link.password_only {
                        AuthMode::Password
                    } else {
                        auth.mode()
                    }
                ),
            ));
        }
        let (side, own, peer) = transcript_parts(ctx)?;
        let binding = binding(ctx.link);
        let t = Transcript {
            side,
            own_nonce: &own,
            peer_nonce: &peer,
            own_id: ctx.local,
            peer_id: &ctx.peer.cluster_id,
            binding: &binding,
        };
        PasswordProof::from_slice(proof)
            .and_then(|p| auth.verify_peer(&t, &p))
            .map_err(|e| to_proto(&e))
    }

    fn established(&self, ctx: &AuthContext<'_>) -> Option<Vec<u8>> {
        let auth = self.for_link(ctx.link).ok()?;
        let chain = chain(ctx.link);
        // Only a certificate nothing but the verified password vouched for is pinned.
        auth.pin_after_password(&chain)?;
        tracing::info!(
            peer = %ctx.link.remote,
            cluster = %ctx.peer.cluster_id,
            name = %ctx.peer.cluster_name,
            "pinned the peer's certificate after its password proof: it is trusted with TLS alone from now on"
        );
        chain.first().map(|c| c.to_vec())
    }
}
