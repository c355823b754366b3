//! UDP: one receive task per socket, and non-blocking sends from whichever task produced the
//! transmit.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{Received, Shared};
use crate::proxy::Route;
use crate::transaction::{Peer, Transmit, Transport};

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT` (so the kernel spreads datagrams
/// over them) and large buffers. Call within a tokio runtime.
pub fn bind_udp(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        // Best effort: the kernel caps these at net.core.[rw]mem_max.
        let _ = socket.set_recv_buffer_size(BUFFER);
        let _ = socket.set_send_buffer_size(BUFFER);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let std_socket: std::net::UdpSocket = socket.into();
        // With port 0, the later sockets share the port the first one got.
        addr = std_socket.local_addr()?;
        sockets.push(UdpSocket::from_std(std_socket)?);
    }
    Ok(sockets)
}

/// Datagrams taken from a socket per wake-up and handed to the core under one lock.
const BATCH: usize = 32;

pub(super) async fn receive<R: Route + Send + 'static>(
    shared: Arc<Shared<R>>,
    socket: Arc<UdpSocket>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let ready = tokio::select! {
            // Datagrams keep flowing while draining: responses and in-dialog requests finish
            // the calls in progress.
            () = shared.stop.cancelled() => return,
            r = socket.readable() => r,
        };
        if let Err(e) = ready {
            tracing::warn!(error = %e, "udp socket failed");
            return;
        }
        // Everything queued, up to a batch (keepalives count, so a flood of them cannot keep
        // this loop from yielding): under load one wake-up and one lock serve many datagrams;
        // when idle this is one datagram.
        for _ in 0..BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                        continue; // keepalive
                    }
                    tracing::trace!(peer = %from, len = n, "datagram");
                    let peer = Peer {
                        transport: Transport::Udp,
                        addr: from,
                    };
                    batch.push((peer, Received::parse(Bytes::copy_from_slice(data))));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors surface here on some systems; they concern an earlier send.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    break;
                }
            }
        }
        if !batch.is_empty() {
            shared.input_batch(&mut batch);
        }
    }
}

pub(super) fn send<R: Route + Send + 'static>(shared: &Arc<Shared<R>>, t: Transmit) {
    let sockets = shared.udp.get().map_or(&[][..], Vec::as_slice);
    let same_family = |(a, _): &&(SocketAddr, Arc<UdpSocket>)| a.is_ipv4() == t.to.addr.is_ipv4();
    let Some((_, socket)) = sockets.iter().find(same_family).or(sockets.first()) else {
        tracing::warn!(peer = %t.to.addr, "no UDP socket to send from");
        shared.transport_error(t.client);
        return;
    };
    match socket.try_send_to(&t.bytes, t.to.addr) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // The send buffer is full: wait for it rather than drop a message.
            let (shared, socket) = (shared.clone(), socket.clone());
            shared.tasks.clone().spawn(async move {
                if socket.send_to(&t.bytes, t.to.addr).await.is_err() {
                    shared.transport_error(t.client);
                }
            });
        }
        Err(e) => {
            tracing::debug!(peer = %t.to.addr, error = %e, "udp send failed");
            shared.transport_error(t.client);
        }
    }
}

const BUFFER: usize = 4 << 20;
