//! Pluggable transports: how a link's byte stream is opened.
//!
//! The driver runs over any `AsyncRead + AsyncWrite` stream. [`PlainTcp`] is plain TCP; the
//! auth module provides TLS transports (tokio-rustls client and server streams) that fill
//! [`LinkInfo::tls`] so the authenticator can bind its proof to the TLS session and check the
//! certificate's names.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::proto::LinkInfo;

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
pub struct PlainTcp;

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
                info: LinkInfo { remote, tls: None },
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
                },
            })
        })
    }
}
