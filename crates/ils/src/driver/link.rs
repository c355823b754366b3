//! One link's task: moves bytes between the stream and the node.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::{Instrument, debug, info_span, trace, warn};

use super::{Connection, Shared, now};
use crate::proto::codec::{self, FrameDecoder};
use crate::proto::{RefuseReason, fresh_nonce};

/// Bytes of encoded frames taken from the node before writing; more stay queued in the node
/// (bounded by the flow-control window), so a peer that does not read holds only this much.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Initial read buffer.
const READ_CHUNK: usize = 64 * 1024;

impl Shared {
    /// Runs one link until it finishes, the stream ends or the service stops.
    pub(super) async fn run_link(self: &Arc<Self>, conn: Connection, dialed: Option<String>) {
        let remote = conn.info.remote.clone();
        let span = info_span!("ils", peer = %remote);
        self.link_loop(conn, dialed).instrument(span).await;
    }

    async fn link_loop(self: &Arc<Self>, conn: Connection, dialed: Option<String>) {
        let waker = Arc::new(Notify::new());
        let remote: Option<std::net::SocketAddr> = conn.info.remote.parse().ok();
        let id = {
            let mut node = self.lock();
            let id = node.open_link(now(), dialed.as_deref(), conn.info, fresh_nonce());
            self.wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, waker.clone());
            self.after(&mut node);
            id
        };
        debug!(link = %id, "link open");
        let (mut rd, mut wr) = tokio::io::split(conn.stream);
        let decoder = FrameDecoder::new(self.config.max_frame);
        let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut outbuf = BytesMut::new();
        let mut auth_refused = false;
        loop {
            let finished = {
                let mut node = self.lock();
                while outbuf.len() < WRITE_HIGH_WATER {
                    let Some(frame) = node.poll_frame(id) else {
                        break;
                    };
                    trace!(message = frame.name(), "send");
                    codec::encode(&frame, &mut outbuf);
                }
                node.is_finished(id)
            };
            if finished && outbuf.is_empty() {
                break;
            }
            tokio::select! {
                _ = self.stop_all.cancelled() => break,
                r = wr.write_buf(&mut outbuf), if !outbuf.is_empty() => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                },
                r = rd.read_buf(&mut inbuf), if !finished => match r {
                    Ok(0) => {
                        debug!("peer closed the stream");
                        break;
                    }
                    Err(e) => {
                        debug!(error = %e, "read failed");
                        if let Some(r) = remote {
                            // A TLS 1.3 peer refuses our certificate after its handshake.
                            self.transport_failed(r, &e, dialed.is_none());
                        }
                        auth_refused = crate::auth::AuthError::from_tls_io(&e).is_some();
                        break;
                    }
                    Ok(n) => {
                        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        self.on_bytes(id, &decoder, &mut inbuf);
                    }
                },
                _ = waker.notified() => {}
            }
        }
        let _ = wr.shutdown().await;
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.with_node(|n| {
            if let (true, Some(addr)) = (auth_refused, &dialed) {
                n.dial_auth_refused(addr);
            }
            n.link_closed(now(), id)
        });
        debug!(link = %id, "link closed");
    }

    /// Decodes every whole frame in `inbuf` and hands it to the node, under one lock.
    fn on_bytes(
        self: &Arc<Self>,
        id: crate::proto::LinkId,
        decoder: &FrameDecoder,
        inbuf: &mut BytesMut,
    ) {
        let mut node = self.lock();
        loop {
            match decoder.decode(inbuf) {
                Ok(Some(frame)) => {
                    trace!(message = frame.name(), "recv");
                    node.handle_frame(now(), id, frame);
                }
                Ok(None) => break,
                Err(e) if !e.is_fatal() => debug!(error = %e, "skipping frame"),
                Err(e) => {
                    warn!(error = %e, "undecodable stream; refusing the link");
                    node.refuse_link(now(), id, RefuseReason::ProtocolError, &e.to_string());
                    inbuf.clear();
                    break;
                }
            }
        }
        self.after(&mut node);
    }
}
