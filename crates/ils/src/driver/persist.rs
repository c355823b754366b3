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

impl Shared {
    /// Writes the node's durable batches one at a time; what arrives meanwhile forms the next
    /// batch (group commit). A batch's acknowledgements go out once it is committed.
    pub(super) async fn run_persister(self: Arc<Self>, store: Arc<Mutex<Store>>) {
        loop {
            let batch = self.lock().take_durable();
            let Some(mut batch) = batch else {
                tokio::select! {
                    _ = self.stop_all.cancelled() => return,
                    _ = self.persist_wake.notified() => continue,
                }
            };
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
                tokio::select! {
                    _ = self.stop_all.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
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

    /// At shutdown, after every task stopped: writes what is still open (own records not yet
    /// on disk, the peer vector's last states).
    pub(super) async fn final_flush(self: &Arc<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let Some(batch) = self.lock().take_durable() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_durable(&batch)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "writing replication state at shutdown failed"),
            Err(e) => error!(error = %e, "the store writer stopped"),
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
