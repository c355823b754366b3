//! The tokio driver: runs the sans-IO [`Node`] over real streams.
//!
//! One task per link loops `select! { read → decode → handle_frame; write; woken; shutdown }`;
//! one timer task sleeps until [`Node::poll_timeout`]; dials run as their own tasks. The node
//! sits behind a `std::sync::Mutex` that is never held across an `.await`: every handler is
//! a short in-memory step, and a task that is slow to write to its peer holds no lock, so a
//! slow or hostile peer cannot stall the others. Each link's outbound data is bounded by the
//! flow-control window and a small write buffer.

mod link;
mod persist;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dialplan::{DirectoryUri, RouteString};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::{FailureThrottle, ThrottleConfig};
use crate::config::Config;
use crate::learned::LearnedSink;
use crate::proto::{AdvertiseReport, Authenticator, Event, LinkId, Node, PeerInfo, Side, Stats};
use crate::store::Store;

pub use transport::{BoxFuture, Connection, IlsStream, PlainTcp, TlsTransport, Transport};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A standalone cluster takes no part in ILS.
    #[error("cluster {cluster} is standalone: ILS replication does not run")]
    Standalone {
        /// The cluster ID.
        cluster: String,
    },
    /// The listener's local address could not be read.
    #[error("ILS listener: {0}")]
    Listener(#[source] io::Error),
    /// The password listener needs a network password, and none is configured.
    #[error("the ILS password listener needs a network password, and none is configured")]
    NoPassword,
}

/// The replication service: the handle the daemon holds.
///
/// Dropping it without [`shutdown`](Self::shutdown) leaves its tasks running until the runtime
/// stops.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
    pub(crate) listeners: Option<Arc<crate::launch::Listeners>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("cluster", &self.shared.config.cluster_id)
            .finish_non_exhaustive()
    }
}

/// Counters of the service: the node's plus the bytes on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStats {
    /// The node's counters.
    pub node: Stats,
    /// Bytes read from all links.
    pub bytes_in: u64,
    /// Bytes written to all links.
    pub bytes_out: u64,
    /// Links open now.
    pub links: usize,
    /// Authentication refusals by this edge, by failure code (`wrong_password`,
    /// `untrusted_certificate`, `throttled`, ...): those of the TLS layer and of the handshake.
    pub auth_failures: BTreeMap<&'static str, u64>,
    /// Transactions written to the store.
    pub commits: u64,
    /// Records (learned and own) written to the store.
    pub records_persisted: u64,
}

struct Shared {
    node: Mutex<Node>,
    wakers: Mutex<HashMap<LinkId, Arc<Notify>>>,
    timer: Notify,
    transport: Arc<dyn Transport>,
    config: Config,
    /// Cancelled first at shutdown: listeners, dials and the timer stop.
    stop_new: CancellationToken,
    /// Cancelled last: links stop even if their peer never closes.
    stop_all: CancellationToken,
    tasks: TaskTracker,
    link_slots: Arc<Semaphore>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// The store the node's durable batches go to.
    store: Option<Arc<Mutex<Store>>>,
    persist_wake: Notify,
    /// Cancelled once every link has stopped: the store writer writes what is left and ends.
    stop_persist: CancellationToken,
    /// The store writer, awaited at shutdown (not in `tasks`: the grace period waits for the
    /// links, and the writer outlives them).
    persister: Mutex<Option<tokio::task::JoinHandle<()>>>,
    commits: AtomicU64,
    records_persisted: AtomicU64,
    /// Repeated authentication failures per source address.
    throttle: Mutex<FailureThrottle>,
    /// Refusals of the TLS layer (and throttling), by code.
    transport_refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Service {
    /// Starts the service: the timer task and the first dials (a spoke's registrar, a later
    /// hub's registrar). Must be called inside a tokio runtime. Add listeners with
    /// [`serve`](Self::serve).
    pub fn start(
        config: Config,
        sink: Arc<dyn LearnedSink>,
        auth: Arc<dyn Authenticator>,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, StartError> {
        if config.role == dialplan::Role::Standalone {
            return Err(StartError::Standalone {
                cluster: config.cluster_id.to_string(),
            });
        }
        let node = Node::new(config.node_config(new_instance()), sink, auth, now());
        Ok(Self::from_node(
            node,
            config,
            transport,
            None,
            ThrottleConfig::default(),
        ))
    }

    /// Runs an already built (and restored) node; with a store, its durable batches are
    /// written there (the node must have been built with `durable` set).
    pub(crate) fn from_node(
        node: Node,
        config: Config,
        transport: Arc<dyn Transport>,
        store: Option<Store>,
        throttle: ThrottleConfig,
    ) -> Self {
        let stop_all = CancellationToken::new();
        let shared = Arc::new(Shared {
            node: Mutex::new(node),
            wakers: Mutex::new(HashMap::new()),
            timer: Notify::new(),
            transport,
            link_slots: Arc::new(Semaphore::new(config.max_links)),
            config,
            stop_new: stop_all.child_token(),
            stop_all,
            tasks: TaskTracker::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            store: store.map(|s| Arc::new(Mutex::new(s))),
            persist_wake: Notify::new(),
            stop_persist: CancellationToken::new(),
            persister: Mutex::new(None),
            commits: AtomicU64::new(0),
            records_persisted: AtomicU64::new(0),
            throttle: Mutex::new(FailureThrottle::new(throttle)),
            transport_refusals: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        shared.tasks.spawn(async move { s.run_timer().await });
        if let Some(store) = shared.store.clone() {
            let s = shared.clone();
            let writer = tokio::spawn(async move { s.run_persister(store).await });
            *shared.persister.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        }
        // The node asks for its first dials on its first step.
        shared.with_node(|n| n.handle_timeout(now()));
        Self {
            shared,
            listeners: None,
        }
    }

    /// The transport the service dials with.
    pub(crate) fn transport(&self) -> Arc<dyn Transport> {
        self.shared.transport.clone()
    }

    /// Accepts links on an already-bound listener, over the service's transport; returns its
    /// address.
    pub fn serve(&self, listener: TcpListener) -> Result<SocketAddr, StartError> {
        self.serve_with(listener, self.shared.transport.clone())
    }

    /// Accepts links on an already-bound listener over `transport`; returns its address.
    pub fn serve_with(
        &self,
        listener: TcpListener,
        transport: Arc<dyn Transport>,
    ) -> Result<SocketAddr, StartError> {
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        info!(proto = %"ils", addr = %addr, "listening");
        let s = self.shared.clone();
        self.shared.tasks.spawn(
            async move { s.run_listener(listener, transport).await }
                .instrument(info_span!("listener", proto = %"ils", addr = %addr)),
        );
        Ok(addr)
    }

    /// Replaces the set of local URIs we advertise (directory URIs with `advertise = true`
    /// and imported catalogs, each with its route string). Call at start and after every
    /// reload; changes are pushed to the network at once.
    pub fn advertise<I>(&self, records: I) -> AdvertiseReport
    where
        I: IntoIterator<Item = (DirectoryUri, RouteString)>,
    {
        let report = self.shared.with_node(|n| n.advertise(now(), records));
        info!(
            added = report.added,
            changed = report.changed,
            removed = report.removed,
            unchanged = report.unchanged,
            "advertised local URIs"
        );
        report
    }

    /// The peer vector with replication state (`ils-edge peers`).
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.shared.lock().peers(now())
    }

    /// Counters.
    pub fn stats(&self) -> ServiceStats {
        let node = self.shared.lock().stats().clone();
        let mut auth_failures = self
            .shared
            .transport_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (code, n) in &node.auth_refused_by_us {
            *auth_failures.entry(code).or_default() += n;
        }
        ServiceStats {
            auth_failures,
            commits: self.shared.commits.load(Ordering::Relaxed),
            records_persisted: self.shared.records_persisted.load(Ordering::Relaxed),
            node,
            bytes_in: self.shared.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.shared.bytes_out.load(Ordering::Relaxed),
            links: self
                .shared
                .wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
        }
    }

    /// Stops accepting and dialing, says goodbye on every link, waits up to `grace` for the
    /// links to flush, then stops every task. Returns once everything the node holds (records,
    /// positions, the peer vector with its pinned certificates) is written to the store: a
    /// graceful stop loses nothing.
    pub async fn shutdown(&self, grace: Duration) {
        let s = &self.shared;
        s.stop_new.cancel();
        s.with_node(|n| n.shutdown(now()));
        s.tasks.close();
        if tokio::time::timeout(grace, s.tasks.wait()).await.is_err() {
            debug!("grace period over; closing the remaining links");
        }
        s.stop_all.cancel();
        s.tasks.wait().await;
        // No link is left, so the node's state is final: the writer drains it and ends.
        s.stop_persist.cancel();
        let writer = s.persister.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer
            && let Err(e) = writer.await
        {
            tracing::error!(error = %e, "the store writer stopped");
        }
        info!("ILS replication stopped");
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Node> {
        // A panic while holding the lock leaves the node as it was between two steps, which is
        // consistent: keep going rather than poison every later call.
        self.node.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the node, then acts on what it asked for.
    fn with_node<T>(self: &Arc<Self>, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut node = self.lock();
        let out = f(&mut node);
        self.after(&mut node);
        out
    }

    /// Drains the node's events (dials, logs) and wakes the links with frames to write.
    fn after(self: &Arc<Self>, node: &mut Node) {
        while let Some(ev) = node.poll_event() {
            self.on_event(ev);
        }
        let wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(id) = node.poll_ready() {
            if let Some(w) = wakers.get(&id) {
                w.notify_one();
            }
        }
        if node.durable_pending() {
            self.persist_wake.notify_one();
        }
        self.timer.notify_one();
    }

    fn on_event(self: &Arc<Self>, ev: Event) {
        match ev {
            Event::Dial { addr } => {
                debug!(addr = %addr, "dialing");
                let s = self.clone();
                self.tasks.spawn(async move { s.dial(addr).await });
            }
            Event::PeerUp {
                cluster,
                role,
                remote,
                side,
                ..
            } => {
                info!(peer = %remote, cluster = %cluster, role = %role, "peer up");
                if side == Side::Acceptor
                    && let Ok(addr) = remote.parse::<SocketAddr>()
                {
                    self.throttle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_success(addr.ip());
                }
            }
            Event::PeerDown {
                cluster, reason, ..
            } => {
                let cluster = cluster.map(|c| c.to_string()).unwrap_or_default();
                info!(cluster = %cluster, reason = ?reason, "peer down");
            }
            Event::Refused {
                remote,
                reason,
                detail,
                by_peer,
                auth,
                side,
                ..
            } => {
                let by = if by_peer { "peer" } else { "us" };
                let code = auth.map_or("", |a| a.label());
                warn!(peer = %remote, reason = %reason, code, refused_by = by, detail = %detail, "link refused");
                if !by_peer
                    && side == Side::Acceptor
                    && auth.is_some_and(|a| a.counts_as_failure())
                    && let Ok(addr) = remote.parse::<SocketAddr>()
                {
                    self.record_failure(addr);
                }
            }
            Event::ProtocolError { error, .. } => warn!(error = %error, "peer broke the protocol"),
            Event::Synced { cluster, .. } => info!(cluster = %cluster, "sync complete"),
            Event::TableReport { origin, report } => {
                if report.refused_cap > 0 {
                    warn!(origin = %origin, refused = report.refused_cap, "learned cap reached: URIs refused");
                }
                if report.new_conflicts > 0 {
                    warn!(origin = %origin, conflicts = report.new_conflicts, "URIs advertised by two clusters");
                }
            }
            Event::Repaired { origin, records } => {
                info!(origin = %origin, records, "anti-entropy repaired differences");
            }
            Event::Reseeded { version } => {
                warn!(
                    version,
                    "peers held newer versions of our records: re-advertised them"
                );
            }
        }
    }

    async fn run_timer(self: Arc<Self>) {
        loop {
            let deadline = self.lock().poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.stop_new.cancelled() => return,
                _ = self.timer.notified() => {}
                _ = sleep => self.with_node(|n| n.handle_timeout(now())),
            }
        }
    }

    async fn run_listener(self: Arc<Self>, listener: TcpListener, transport: Arc<dyn Transport>) {
        loop {
            let accepted = tokio::select! {
                _ = self.stop_new.cancelled() => return,
                r = listener.accept() => r,
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = self.check_throttle(remote) {
                self.count_refusal(&e);
                warn!(peer = %remote, code = e.code(), reason = %e, "link refused");
                continue;
            }
            let Ok(slot) = self.link_slots.clone().try_acquire_owned() else {
                warn!(peer = %remote, max = self.config.max_links, "too many links: connection dropped");
                continue;
            };
            let s = self.clone();
            let transport = transport.clone();
            self.tasks.spawn(async move {
                let timeout = s.config.handshake_timeout;
                match tokio::time::timeout(timeout, transport.accept(tcp, remote)).await {
                    Ok(Ok(conn)) => s.run_link(conn, None).await,
                    Ok(Err(e)) => s.transport_failed(remote, &e, true),
                    Err(_) => warn!(peer = %remote, "inbound link: transport handshake timed out"),
                }
                drop(slot);
            });
        }
    }

    async fn dial(self: Arc<Self>, addr: String) {
        let attempt = async {
            let slot = self
                .link_slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| io::Error::other("too many links"))?;
            let timeout = self.config.connect_timeout + self.config.handshake_timeout;
            let conn = tokio::time::timeout(timeout, self.transport.connect(&addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            Ok::<_, io::Error>((conn, slot))
        };
        let result = tokio::select! {
            _ = self.stop_new.cancelled() => return,
            r = attempt => r,
        };
        match result {
            Ok((conn, slot)) => {
                self.run_link(conn, Some(addr)).await;
                drop(slot);
            }
            Err(e) => {
                let auth = crate::auth::AuthError::from_tls_io(&e).is_some();
                if auth {
                    let remote = addr.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    self.transport_failed(remote, &e, false);
                } else {
                    warn!(addr = %addr, error = %e, "dial failed");
                }
                self.with_node(|n| {
                    if auth {
                        n.dial_auth_refused(&addr);
                    }
                    n.dial_failed(now(), &addr)
                });
            }
        }
    }
}

/// A random number per process start.
pub(crate) fn new_instance() -> u64 {
    let n = crate::proto::fresh_nonce();
    u64::from_le_bytes([n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]])
}

/// The driver's clock: tokio's, so tests with a paused clock move the node's time too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
