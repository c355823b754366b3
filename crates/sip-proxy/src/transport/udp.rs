//! UDP: one receiving thread per socket, blocked in `recvfrom` as a classic SIP proxy's UDP
//! workers are, and non-blocking sends from whichever thread or task produced the transmit.
//!
//! A thread rather than a tokio task: under load the readiness round trip (`epoll_wait`, a
//! `recvfrom` that finds the queue empty, the wake-up of a worker) cost more than handling the
//! datagram. A blocked `recvfrom` is woken by the sender's own system call.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::{Received, Shared};
use crate::proxy::Route;
use crate::transaction::{Peer, Transmit, Transport};

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT` (so the kernel spreads datagrams
/// over them) and large buffers.
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
        socket.bind(&addr.into())?;
        let std_socket: UdpSocket = socket.into();
        // With port 0, the later sockets share the port the first one got.
        addr = std_socket.local_addr()?;
        sockets.push(std_socket);
    }
    Ok(sockets)
}

/// Prepares a registered socket: blocking receives that give up now and then, so the thread
/// notices a shutdown (or a dropped proxy) on an idle socket.
pub(super) fn prepare(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(POLL))?;
    // Bounds the blocking fallback send below.
    socket.set_write_timeout(Some(Duration::from_secs(1)))
}

/// How often an idle receiving thread checks whether the proxy is stopping.
const POLL: Duration = Duration::from_millis(100);

/// The receiving loop of one socket, run on its own thread within the runtime's context. Ends
/// when the proxy stops or is dropped; `token` tells the proxy's task tracker when.
pub(super) fn receive<R: Route + Send + 'static>(
    shared: Weak<Shared<R>>,
    socket: Arc<UdpSocket>,
    _token: TaskTrackerToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = socket.recv_from(&mut buf);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Datagrams keep flowing while draining: responses and in-dialog requests finish the
        // calls in progress.
        if shared.stop.is_cancelled() {
            return;
        }
        match received {
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
                shared.input_parsed(peer, Received::parse(Bytes::copy_from_slice(data)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ICMP errors surface here on some systems; they concern an earlier send. Anything
            // else is unexpected: pause briefly so a persistent error cannot spin a core.
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

pub(super) fn send<R: Route + Send + 'static>(shared: &Arc<Shared<R>>, t: Transmit) {
    let sockets = shared.udp.get().map_or(&[][..], Vec::as_slice);
    let Some((_, socket)) = sockets
        .iter()
        .find(|(a, _)| a.is_ipv4() == t.to.addr.is_ipv4())
        .or(sockets.first())
    else {
        tracing::warn!(peer = %t.to.addr, "no UDP socket to send from");
        shared.transport_error(t.client);
        return;
    };
    let to = SockAddr::from(t.to.addr);
    match SockRef::from(&**socket).send_to_with_flags(&t.bytes, &to, libc::MSG_DONTWAIT) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // The send buffer is full: wait for room (bounded by the socket's write timeout)
            // on a blocking thread rather than drop a message.
            let shared = shared.clone();
            let socket = socket.clone();
            shared.tasks.clone().spawn_blocking(move || {
                if socket.send_to(&t.bytes, t.to.addr).is_err() {
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
