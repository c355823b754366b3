//! TCP and TLS: accepted and outbound connections, framed on Content-Length, kept in one table
//! keyed by the remote address so that responses and later requests reuse them.

use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{Outgoing, Received, Shared, lock};
use crate::message::{FrameError, Framer};
use crate::proxy::Route;
use crate::transaction::{Peer, Transmit, Transport};

pub(super) async fn accept<R: Route + Send + 'static>(
    shared: Arc<Shared<R>>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let accepted = tokio::select! {
            () = shared.stop_accepting.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(proto = %transport, error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer { transport, addr };
        if lock(&shared.conns).len() >= shared.config.max_connections {
            tracing::warn!(peer = %addr, "too many connections, refusing");
            continue;
        }
        let shared2 = shared.clone();
        let tls = tls.clone();
        shared.tasks.spawn(async move {
            let (tx, rx) = mpsc::channel(shared2.config.connection_queue);
            match tls {
                None => {
                    register(&shared2, peer, tx);
                    run(shared2, stream, peer, rx).await;
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        register(&shared2, peer, tx);
                        run(shared2, tls_stream, peer, rx).await;
                    }
                    Err(e) => tracing::warn!(peer = %addr, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
}

/// Queues a transmit on the connection to its peer, opening one when there is none. The queue
/// is registered before connecting, so messages sent meanwhile wait for the same connection.
pub(super) fn send<R: Route + Send + 'static>(shared: &Arc<Shared<R>>, t: Transmit) {
    let rx = {
        let mut conns = lock(&shared.conns);
        if let Some(tx) = conns.get(&t.to) {
            match tx.try_send((t.bytes.clone(), t.client)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    drop(conns);
                    tracing::warn!(peer = %t.to.addr, "connection queue full, dropping message");
                    shared.transport_error(t.client);
                    return;
                }
                // That connection has ended: open a new one below.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let (tx, rx) = mpsc::channel(shared.config.connection_queue);
        let _ = tx.try_send((t.bytes, t.client));
        conns.insert(t.to, tx);
        rx
    };
    let shared = shared.clone();
    shared
        .tasks
        .clone()
        .spawn(connect(shared.clone(), t.to, rx));
}

/// Opens an outbound connection and runs it; on failure every queued message's client
/// transaction is failed, so the proxy fails over at once.
async fn connect<R: Route + Send + 'static>(
    shared: Arc<Shared<R>>,
    peer: Peer,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let connect =
        tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(peer.addr));
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer.addr, error = %e, "connect failed");
            return fail_queue(&shared, peer, &mut rx);
        }
        Err(_) => {
            tracing::debug!(peer = %peer.addr, "connect timed out");
            return fail_queue(&shared, peer, &mut rx);
        }
    };
    let _ = stream.set_nodelay(true);
    match (peer.transport, shared.connector.clone()) {
        (Transport::Tls, Some(connector)) => {
            let named = lock(&shared.tls_names).get(&peer.addr).cloned();
            let name = named
                .and_then(|n| ServerName::try_from(n).ok())
                .unwrap_or_else(|| ServerName::IpAddress(peer.addr.ip().into()));
            match connector.connect(name, stream).await {
                Ok(tls) => run(shared, tls, peer, rx).await,
                Err(e) => {
                    tracing::warn!(peer = %peer.addr, error = %e, "TLS connect failed");
                    fail_queue(&shared, peer, &mut rx);
                }
            }
        }
        (Transport::Tls, None) => {
            tracing::warn!(peer = %peer.addr, "no TLS client configuration");
            fail_queue(&shared, peer, &mut rx);
        }
        _ => run(shared, stream, peer, rx).await,
    }
}

/// Closes a queue whose connection failed and fails the client transactions waiting on it.
fn fail_queue<R: Route + Send + 'static>(
    shared: &Arc<Shared<R>>,
    peer: Peer,
    rx: &mut mpsc::Receiver<Outgoing>,
) {
    rx.close();
    unregister(shared, peer);
    while let Ok((_, client)) = rx.try_recv() {
        shared.transport_error(client);
    }
}

/// Bytes gathered from a connection's queue into one write.
const WRITE_BATCH: usize = 64 * 1024;
/// A write buffer grown beyond this by a burst is let go once the burst is written.
const WRITE_BUFFER_KEPT: usize = 16 * 1024;

fn register<R>(shared: &Shared<R>, peer: Peer, tx: mpsc::Sender<Outgoing>) {
    lock(&shared.conns).insert(peer, tx);
}

/// Reads framed messages into the core and writes queued messages, until either side closes.
async fn run<R, S>(shared: Arc<Shared<R>>, stream: S, peer: Peer, mut rx: mpsc::Receiver<Outgoing>)
where
    R: Route + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(peer = %peer.addr, proto = %peer.transport, "connection open");
    let framer = Framer::new(shared.config.max_message_size);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut batch = Vec::new();
    // Grows to the largest burst written, and is let go after an unusually large one so an
    // idle connection holds little memory.
    let mut out = Vec::new();
    let idle = shared.config.idle_timeout;
    let mut queue_closed = false;
    // One timer for the connection's life: when it fires, the connection closes only if
    // nothing moved since it was armed; otherwise it is re-armed. (Re-arming on every message
    // would put each message through the timer wheel.)
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let mut active = false;
    loop {
        tokio::select! {
            // Writes first: responses and forwarded requests already produced go out before
            // more input is read, so a busy connection pushes back on its peer instead of
            // queueing without bound.
            biased;
            () = shared.stop.cancelled() => break,
            next = rx.recv(), if !queue_closed => match next {
                Some((bytes, _)) => {
                    active = true;
                    // Everything queued goes out in one write (up to 64 KB), not one system
                    // call per message.
                    out.clear();
                    out.extend_from_slice(&bytes);
                    while out.len() < WRITE_BATCH {
                        match rx.try_recv() {
                            Ok((bytes, _)) => out.extend_from_slice(&bytes),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = wr.write_all(&out).await {
                        tracing::debug!(peer = %peer.addr, error = %e, "write failed");
                        break;
                    }
                    if out.capacity() > WRITE_BUFFER_KEPT {
                        out = Vec::new();
                    }
                }
                // Our table entry was replaced (a newer connection to the same address):
                // keep reading until the peer closes or the connection idles out.
                None => queue_closed = true,
            },
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    active = true;
                    if !deliver(&shared, &framer, &mut buf, peer, &mut batch) {
                        break;
                    }
                }
            },
            () = &mut timer => {
                if !active {
                    tracing::debug!(peer = %peer.addr, "closing idle connection");
                    break;
                }
                active = false;
                timer.as_mut().reset(tokio::time::Instant::now() + idle);
            }
        }
    }
    rx.close();
    unregister(&shared, peer);
    let _ = wr.shutdown().await;
    tracing::debug!(peer = %peer.addr, "connection closed");
}

/// Hands every complete message in `buf` to the core, in order and under one lock (a busy
/// connection reads many at once); false when the stream must close.
fn deliver<R: Route + Send + 'static>(
    shared: &Arc<Shared<R>>,
    framer: &Framer,
    buf: &mut BytesMut,
    peer: Peer,
    batch: &mut Vec<(Peer, Received)>,
) -> bool {
    let keep = loop {
        match framer.decode_frame(buf) {
            Ok(Some(frame)) => batch.push((peer, Received::parse(frame))),
            Ok(None) => break true,
            Err(FrameError::Parse(_)) => {}
            Err(e) => {
                tracing::warn!(peer = %peer.addr, error = %e, "closing stream");
                break false;
            }
        }
    };
    if !batch.is_empty() {
        shared.input_batch(batch);
    }
    keep
}

fn unregister<R>(shared: &Shared<R>, peer: Peer) {
    // Only our own entry: its receiver is closed. A newer connection may have replaced it.
    let mut conns = lock(&shared.conns);
    if conns.get(&peer).is_some_and(mpsc::Sender::is_closed) {
        conns.remove(&peer);
    }
}
