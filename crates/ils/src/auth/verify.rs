//! The rustls certificate verifiers of both directions (mutual TLS).
//!
//! They apply the part of the policy that needs no Hello: trust (pinned or CA-signed), extended
//! key usage and validity. The name check follows in [`super::Authenticator::admit`] once the
//! Hello says which cluster the peer claims to be; a client that already knows the name it
//! dials (a DNS [`ServerName`]) has it checked here too.
//!
//! In [`AuthMode::TlsPassword`] a certificate that is neither pinned nor CA-signed passes the
//! TLS layer so that the password can vouch for it after the Hello.
//!
//! In [`AuthMode::Password`] they accept any certificate: trust then comes from the password
//! proof, which is bound to this TLS session (see [`super::password`]). The handshake signature
//! is verified in every mode, so the peer does hold the key of the certificate it presents.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::cert::CertFacts;
use super::{AuthMode, TrustStore};

/// Verifies the server's certificate on the initiating side.
#[derive(Debug)]
pub(crate) struct PeerServerVerifier {
    pub(crate) mode: AuthMode,
    pub(crate) trust: Arc<TrustStore>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.mode == AuthMode::Password {
            CertFacts::parse(end_entity).map_err(super::AuthError::into_rustls)?;
            return Ok(ServerCertVerified::assertion());
        }
        let chain = chain(end_entity, intermediates);
        let facts = match self.trust.verify_facts(&chain, now) {
            Ok((_, facts)) => facts,
            // TLS + password: the password vouches for a certificate nothing else trusts.
            Err(super::AuthError::UntrustedCertificate { .. })
                if self.mode == AuthMode::TlsPassword =>
            {
                return Ok(ServerCertVerified::assertion());
            }
            Err(e) => return Err(e.into_rustls()),
        };
        if let ServerName::DnsName(name) = server_name {
            facts
                .check_name(name.as_ref())
                .map_err(super::AuthError::into_rustls)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies the client's certificate on the accepting side.
///
/// A certificate is requested but not mandatory at the TLS layer, so that a peer without one is
/// refused after the Hello with [`super::AuthError::NoCertificate`], which names the mode,
/// rather than with a bare TLS alert.
#[derive(Debug)]
pub(crate) struct PeerClientVerifier {
    pub(crate) mode: AuthMode,
    pub(crate) trust: Arc<TrustStore>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.mode == AuthMode::Password {
            CertFacts::parse(end_entity).map_err(super::AuthError::into_rustls)?;
            return Ok(ClientCertVerified::assertion());
        }
        match self.trust.verify(&chain(end_entity, intermediates), now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            // TLS + password: the password vouches for a certificate nothing else trusts.
            Err(super::AuthError::UntrustedCertificate { .. })
                if self.mode == AuthMode::TlsPassword =>
            {
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => Err(e.into_rustls()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn chain<'a>(
    end_entity: &CertificateDer<'a>,
    intermediates: &[CertificateDer<'a>],
) -> Vec<CertificateDer<'a>> {
    let mut chain = Vec::with_capacity(1 + intermediates.len());
    chain.push(end_entity.clone());
    chain.extend(intermediates.iter().cloned());
    chain
}
