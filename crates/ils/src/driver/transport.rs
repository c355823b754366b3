//! Pluggable transports: how a link's byte stream is opened.
//!
//! The driver runs over any `AsyncRead + AsyncWrite` stream. [`TlsTransport`] runs links
//! inside TLS (the auth module's rustls configurations) and fills [`LinkInfo::tls`] with the
//! channel binding and the peer's chain, so the authenticator can bind its proof to the TLS
//! session and check the certificate; [`PlainTcp`] is plain TCP, for password authentication
//! with the operator's explicit opt-in only.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::auth::{self, AuthError, TlsPeer};
use crate::proto::{LinkInfo, TlsInfo};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream a link can run over.
pub trait IlsStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> IlsStream for T {}

/// An opened stream and what the transport learned about it.
pub struct Connection {
    /// The stream.
    pub stream: Box<dyn IlsStream>,
    /// Facts for the authenticator and the logs.
    pub info: LinkInfo,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Opens link streams: outbound by address, inbound from an accepted TCP connection.
///
/// Both run under the driver's handshake timeout; a TLS transport does its TLS handshake here.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`).
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Connection>>;

    /// Wraps an accepted TCP connection.
    fn accept(&self, tcp: TcpStream, remote: SocketAddr) -> BoxFuture<'_, io::Result<Connection>>;
}

/// Plain TCP, no encryption: for password authentication with the operator's explicit
/// plaintext opt-in, and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp {
    password_only: bool,
}

impl PlainTcp {
    /// Plain TCP for the password-only listener: its links are authenticated by the password.
    pub fn password_port() -> Self {
        Self {
            password_only: true,
        }
    }
}

impl Transport for PlainTcp {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let remote = tcp
                .peer_addr()
                .map_or_else(|_| addr.to_owned(), |a| a.to_string());
            Ok(Connection {
                stream: Box::new(tcp),
                info: LinkInfo {
                    remote,
                    tls: None,
                    password_only: false,
                },
            })
        })
    }

    fn accept(&self, tcp: TcpStream, remote: SocketAddr) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            tcp.set_nodelay(true)?;
            Ok(Connection {
                stream: Box::new(tcp),
                info: LinkInfo {
                    remote: remote.to_string(),
                    tls: None,
                    password_only: self.password_only,
                },
            })
        })
    }
}

/// TLS over TCP, configured for one authentication mode (see [`auth::tls`]).
#[derive(Clone)]
pub struct TlsTransport {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    password_only: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("password_only", &self.password_only)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// TLS in `auth`'s mode. `password_only` marks the links it accepts as arriving on the
    /// password-only listener (pass an authenticator in [`auth::AuthMode::Password`] then).
    pub fn new(auth: &auth::Authenticator, password_only: bool) -> Result<Self, AuthError> {
        Ok(Self {
            acceptor: auth.acceptor()?,
            connector: auth.connector()?,
            password_only,
        })
    }
}

fn tls_info(peer: TlsPeer) -> TlsInfo {
    TlsInfo {
        channel_binding: peer.binding.as_bytes().to_vec(),
        peer_chain: peer.chain.iter().map(|c| c.to_vec()).collect(),
    }
}

impl Transport for TlsTransport {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let peer = tcp.peer_addr()?;
            // The certificate's name is checked after the Welcome, against the peer vector.
            let name = auth::tls::server_name(None, peer.ip());
            let stream = self.connector.connect(name, tcp).await?;
            let tls = TlsPeer::from_client(&stream).map_err(io::Error::other)?;
            Ok(Connection {
                stream: Box::new(stream),
                info: LinkInfo {
                    remote: peer.to_string(),
                    tls: Some(tls_info(tls)),
                    password_only: false,
                },
            })
        })
    }

    fn accept(&self, tcp: TcpStream, remote: SocketAddr) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            tcp.set_nodelay(true)?;
            let stream = self.acceptor.accept(tcp).await?;
            let tls = TlsPeer::from_server(&stream).map_err(io::Error::other)?;
            Ok(Connection {
                stream: Box::new(stream),
                info: LinkInfo {
                    remote: remote.to_string(),
                    tls: Some(tls_info(tls)),
                    password_only: self.password_only,
                },
            })
        })
    }
}
