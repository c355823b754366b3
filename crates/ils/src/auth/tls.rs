//! rustls and tokio-rustls configurations for each [`AuthMode`], and what the driver reads from
//! an established TLS stream.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::verify::{PeerClientVerifier, PeerServerVerifier};
use super::{AuthError, AuthMode, ChannelBinding, Identity, TrustStore, provider};

/// The TLS server configuration of an ILS listener.
///
/// A client certificate is requested in every mode; session resumption is off, so every
/// connection runs the full certificate checks against the current trust store.
pub fn server_config(
    mode: AuthMode,
    identity: &Identity,
    trust: Arc<TrustStore>,
) -> Result<Arc<ServerConfig>, AuthError> {
    let provider = provider();
    let verifier = PeerClientVerifier {
        mode,
        trust,
        provider: provider.clone(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AuthError::Tls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(identity.chain().to_vec(), identity.private_key())
        .map_err(AuthError::Tls)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The TLS client configuration for connecting to ILS peers; presents this edge's identity.
pub fn client_config(
    mode: AuthMode,
    identity: &Identity,
    trust: Arc<TrustStore>,
) -> Result<Arc<ClientConfig>, AuthError> {
    let provider = provider();
    let verifier = PeerServerVerifier {
        mode,
        trust,
        provider: provider.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AuthError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(identity.chain().to_vec(), identity.private_key())
        .map_err(AuthError::Tls)?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// A tokio-rustls acceptor for [`server_config`].
pub fn acceptor(
    mode: AuthMode,
    identity: &Identity,
    trust: Arc<TrustStore>,
) -> Result<TlsAcceptor, AuthError> {
    server_config(mode, identity, trust).map(TlsAcceptor::from)
}

/// A tokio-rustls connector for [`client_config`].
pub fn connector(
    mode: AuthMode,
    identity: &Identity,
    trust: Arc<TrustStore>,
) -> Result<TlsConnector, AuthError> {
    client_config(mode, identity, trust).map(TlsConnector::from)
}

/// The name to connect with: the peer's cluster name when the peer vector knows it (the
/// certificate is then checked against it during the handshake), else the address (the name is
/// checked after the Hello).
pub fn server_name(cluster_name: Option<&str>, addr: IpAddr) -> ServerName<'static> {
    cluster_name
        .and_then(|n| ServerName::try_from(n.trim_end_matches('.').to_owned()).ok())
        .unwrap_or(ServerName::IpAddress(addr.into()))
}

/// What the session needs from an established TLS connection.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The channel binding for the password proof.
    pub binding: ChannelBinding,
    /// The peer's certificate chain, end-entity first (empty if it presented none).
    pub chain: Vec<CertificateDer<'static>>,
}

impl TlsPeer {
    /// Reads the binding and peer chain of an accepted connection.
    pub fn from_server<IO>(
        stream: &tokio_rustls::server::TlsStream<IO>,
    ) -> Result<Self, AuthError> {
        let conn = stream.get_ref().1;
        Ok(Self {
            binding: ChannelBinding::from_server(conn)?,
            chain: owned_chain(conn.peer_certificates()),
        })
    }

    /// Reads the binding and peer chain of an initiated connection.
    pub fn from_client<IO>(
        stream: &tokio_rustls::client::TlsStream<IO>,
    ) -> Result<Self, AuthError> {
        let conn = stream.get_ref().1;
        Ok(Self {
            binding: ChannelBinding::from_client(conn)?,
            chain: owned_chain(conn.peer_certificates()),
        })
    }
}

fn owned_chain(certs: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    certs
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}
