//! The driver's bookkeeping around the node: writing its durable batches to the store (group
//! commit, acknowledgements released after each commit) and counting, logging and throttling
//! authentication failures of the transport.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, error, warn};

use super::{Shared, now};
use crate::auth::AuthError;
use crate::store::Store;

/// Pause before retrying a failed write (a full disk, a locked file).
const RETRY: Duration = Duration::from_secs(1);
/// Retries of a failed write once the service is stopping, before the batch is given up.
const RETRIES_AT_SHUTDOWN: u32 = 3;

impl Shared {
    /// Writes the node's durable batches one at a time; what arrives meanwhile forms the next
    /// batch (group commit). A batch's acknowledgements go out once it is committed.
    ///
    /// Runs until [`Shared::stop_persist`] is cancelled (at shutdown, once every link has
    /// stopped), then writes whatever is still open and ends: a graceful stop loses nothing.
    /// A failed write is retried every second; once stopping, a few more times before the
    /// batch is given up (logged).
    pub(super) async fn run_persister(self: Arc<Self>, store: Arc<Mutex<Store>>) {
        loop {
            let batch = self.lock().take_durable();
            let Some(mut batch) = batch else {
                if self.stop_persist.is_cancelled() {
                    return;
                }
                tokio::select! {
                    // Once more round the loop: take what the last steps left, then end.
                    _ = self.stop_persist.cancelled() => {}
                    _ = self.persist_wake.notified() => {}
                }
                continue;
            };
            let mut retries_while_stopping = 0;
            loop {
                let st = store.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let r = st
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write_durable(&batch);
                    (batch, r)
                })
                .await;
                match written {
                    Ok((b, Ok(()))) => {
                        batch = b;
                        break;
                    }
                    Ok((b, Err(e))) => {
                        error!(error = %e, "writing replication state failed; acknowledgements wait, retrying");
                        batch = b;
                    }
                    Err(e) => {
                        error!(error = %e, "the store writer stopped");
                        return;
                    }
                }
                if self.stop_persist.is_cancelled() {
                    retries_while_stopping += 1;
                    if retries_while_stopping > RETRIES_AT_SHUTDOWN {
                        error!(
                            ticket = batch.ticket,
                            records = batch.records(),
                            peers = batch.peers.len(),
                            "stopping: replication state not written (peers resend unacknowledged records)"
                        );
                        return;
                    }
                }
                tokio::time::sleep(RETRY).await;
            }
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.records_persisted
                .fetch_add(batch.records() as u64, Ordering::Relaxed);
            debug!(
                ticket = batch.ticket,
                records = batch.records(),
                "replication state written"
            );
            self.with_node(|n| n.persisted(now(), batch.ticket));
        }
    }

    /// Refuses an address in its backoff period.
    pub(super) fn check_throttle(&self, remote: SocketAddr) -> Result<(), AuthError> {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(remote.ip(), now())
    }

    /// Counts a refusal by its code.
    pub(super) fn count_refusal(&self, e: &AuthError) {
        *self
            .transport_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(e.code())
            .or_default() += 1;
    }

    /// An authentication failure from `remote` counts against it.
    pub(super) fn record_failure(&self, remote: SocketAddr) {
        let blocked = self
            .throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_failure(remote.ip(), now());
        if blocked {
            warn!(peer = %remote, "too many failed authentications: this address is refused for a while");
        }
    }

    /// A transport (TLS) failure on a link: a refusal of our verifier is logged with its
    /// reason, counted, and (inbound) counted against the address.
    pub(super) fn transport_failed(&self, remote: SocketAddr, e: &io::Error, inbound: bool) {
        let Some(auth) = AuthError::from_tls_io(e) else {
            warn!(peer = %remote, error = %e, "link failed before the ILS handshake");
            return;
        };
        let by_peer = matches!(auth, AuthError::RefusedByPeer { .. });
        let by = if by_peer { "peer" } else { "us" };
        warn!(peer = %remote, code = auth.code(), refused_by = by, reason = %auth, "TLS refused");
        if by_peer {
            return;
        }
        self.count_refusal(&auth);
        if inbound && auth.counts_as_failure() {
            self.record_failure(remote);
        }
    }
}
