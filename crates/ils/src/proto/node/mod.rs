//! One cluster's replication state, sans-IO: its own records, every learned record by origin,
//! the peer vector, each link's session and positions, and the decisions of whom to dial,
//! what to relay and what to repair.
//!
//! The node owns no socket and reads no clock. A driver opens links when the node asks
//! ([`Event::Dial`]) or a peer connects, passes frames in with [`Node::handle_frame`], writes
//! what [`Node::poll_frame`] returns, and calls [`Node::handle_timeout`] at
//! [`Node::poll_timeout`].

mod dial;
mod durable;
mod peers;
mod replicate;
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, DirectoryUri, Role, RouteString, UriLookupPolicy};

use super::handshake::{
    AuthFailure, Authenticator, LinkInfo, LocalIdentity, NONCE_LEN, PeerHello, Side,
};
use super::records::{OriginIdx, SELF, Store};
use super::session::{CloseReason, Refusal, Session, SessionConfig, SessionError, SessionEvent};
use super::wire::{Frame, RefuseReason};
use crate::learned::{ApplyReport, LearnedSink};

pub use durable::{DurableBatch, OriginDelta, PeerRow, RecordChange};
pub use peers::{PeerInfo, PeerState};
pub use stats::{AdvertiseReport, Stats};

use dial::Dialer;
use durable::Durable;
use peers::PeerTable;
use replicate::{InRepair, RepairJob};

/// Identifies one link of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// Everything a node needs to know about its cluster and its place in the network.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Who we are.
    pub identity: LocalIdentity,
    /// The address to join through: a spoke's hub, or any hub for a later hub; `None` for the
    /// first hub.
    pub registrar: Option<String>,
    /// Hubs a spoke fails over to, in order, when its registrar is unreachable.
    pub backup_hubs: Vec<String>,
    /// How often each link runs an anti-entropy pass.
    pub sync_interval: Duration,
    /// How long a tombstone is kept before it is collected.
    pub tombstone_retention: Duration,
    /// Link timers and limits.
    pub session: SessionConfig,
    /// Records per `Records` frame, at most.
    pub batch_records: usize,
    /// Approximate bytes per `Records` frame, at most (well below the frame limit).
    pub batch_bytes: usize,
    /// Records held from other clusters, at most; beyond it new URIs are dropped and counted
    /// (the learned table's own cap is usually lower).
    pub max_learned_records: usize,
    /// How received URIs are parsed for the learned table.
    pub uri_policy: UriLookupPolicy,
    /// First reconnect delay; doubles per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Hand state changes to the driver to write to disk ([`Node::take_durable`]), and hold
    /// back acknowledgements and own records until they are written.
    pub durable: bool,
}

impl NodeConfig {
    /// A configuration with default timers for `identity`.
    pub fn new(identity: LocalIdentity) -> Self {
        Self {
            identity,
            registrar: None,
            backup_hubs: Vec::new(),
            sync_interval: Duration::from_secs(60),
            tombstone_retention: Duration::from_secs(24 * 3600),
            session: SessionConfig::default(),
            batch_records: 2048,
            batch_bytes: 256 * 1024,
            max_learned_records: 2_000_000,
            uri_policy: UriLookupPolicy::default(),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            durable: false,
        }
    }
}

/// What the node tells its driver and its operator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Open a connection to `addr`, then call [`Node::open_link`] (or [`Node::dial_failed`]).
    Dial {
        /// The address to dial.
        addr: String,
    },
    /// A link completed its handshake.
    PeerUp {
        /// The link.
        link: LinkId,
        /// The peer's cluster ID.
        cluster: ClusterId,
        /// The peer's role.
        role: Role,
        /// The peer's address.
        remote: String,
        /// Our end of the link.
        side: Side,
    },
    /// A link ended.
    PeerDown {
        /// The link.
        link: LinkId,
        /// The peer's cluster ID, if it got as far as naming itself.
        cluster: Option<ClusterId>,
        /// Why.
        reason: CloseReason,
    },
    /// A link was refused, by us or by the peer.
    Refused {
        /// The link.
        link: LinkId,
        /// The remote address.
        remote: String,
        /// The reason code.
        reason: RefuseReason,
        /// The sentence for the log.
        detail: String,
        /// Whether the peer refused us.
        by_peer: bool,
        /// With `BadAuth`: the specific authentication failure.
        auth: Option<AuthFailure>,
        /// Our end of the link.
        side: Side,
    },
    /// The peer broke the protocol (the link is refused with `ProtocolError`).
    ProtocolError {
        /// The link.
        link: LinkId,
        /// What it did.
        error: SessionError,
    },
    /// The answer to our `SyncRequest` is complete: we hold what the peer had.
    Synced {
        /// The link.
        link: LinkId,
        /// The peer.
        cluster: ClusterId,
    },
    /// The learned table applied a batch and some URIs were refused or conflict.
    TableReport {
        /// The origin of the batch.
        origin: ClusterId,
        /// What the table did.
        report: ApplyReport,
    },
    /// An anti-entropy repair completed and changed our records.
    Repaired {
        /// The origin repaired.
        origin: ClusterId,
        /// Records added, changed or removed by the repair.
        records: u64,
    },
    /// A peer held newer versions of our own records than we did (our state was lost): our
    /// counter was moved past them and every own record re-advertised.
    Reseeded {
        /// Our new highest version.
        version: u64,
    },
}

/// One cluster's replication state.
pub struct Node {
    config: NodeConfig,
    identity: Arc<LocalIdentity>,
    sink: Arc<dyn LearnedSink>,
    auth: Arc<dyn Authenticator>,
    store: Store,
    links: BTreeMap<LinkId, Link>,
    next_link: u64,
    peers: PeerTable,
    dialer: Dialer,
    events: VecDeque<Event>,
    ready: BTreeSet<LinkId>,
    next_anti_entropy: Instant,
    shutting_down: bool,
    stats: Stats,
    durable: Durable,
}

/// One link's replication state around its session.
struct Link {
    session: Session,
    /// The address we dialed, for a dialed link.
    dialed: Option<String>,
    /// Set when the handshake completes.
    peer: Option<LinkPeer>,
    /// The peer's `SyncRequest` has arrived: `cursors` are valid and we stream to it.
    synced: bool,
    /// Per origin: the highest version sent on this link.
    cursors: HashMap<OriginIdx, u64>,
    /// Where the next cursor batch starts looking (origins are served in turn).
    next_origin: OriginIdx,
    /// A `SyncDone` is owed once the cursors catch up.
    sync_done_due: bool,
    repairs_out: VecDeque<RepairJob>,
    repairs_in: HashMap<OriginIdx, InRepair>,
    /// Per sent `Records` frame: its sequence number, origin and last version.
    in_flight: VecDeque<(u64, OriginIdx, u64)>,
    /// Per origin: the highest version the peer acknowledged.
    acked: HashMap<OriginIdx, u64>,
    last_ack: Option<Instant>,
    last_sync: Option<Instant>,
    vector_dirty: bool,
    /// The driver has been told the link is finished.
    finished_reported: bool,
}

#[derive(Debug, Clone)]
struct LinkPeer {
    cluster: ClusterId,
    name: String,
    origin: OriginIdx,
    role: Role,
    instance: u64,
}

impl Node {
    /// A node with no links, holding no records.
    pub fn new(
        config: NodeConfig,
        sink: Arc<dyn LearnedSink>,
        auth: Arc<dyn Authenticator>,
        now: Instant,
    ) -> Self {
        let identity = Arc::new(config.identity.clone());
        let store = Store::new(identity.cluster_id.clone());
        let dialer = Dialer::new(&config, now);
        let next_anti_entropy = now + config.sync_interval;
        let config_durable = config.durable;
        let mut node = Self {
            peers: PeerTable::new(&identity),
            identity,
            config,
            sink,
            auth,
            store,
            links: BTreeMap::new(),
            next_link: 1,
            dialer,
            events: VecDeque::new(),
            ready: BTreeSet::new(),
            next_anti_entropy,
            shutting_down: false,
            stats: Stats::default(),
            durable: Durable::new(config_durable),
        };
        // The first dials (a spoke's or a later hub's registrar) are asked for at once.
        node.after(now);
        node
    }

    /// Starts a link over a connection the driver opened (`dialed`: the address it dialed,
    /// from [`Event::Dial`]) or accepted (`None`).
    pub fn open_link(
        &mut self,
        now: Instant,
        dialed: Option<&str>,
        info: LinkInfo,
        nonce: [u8; NONCE_LEN],
    ) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let side = if dialed.is_some() {
            Side::Dialer
        } else {
            Side::Acceptor
        };
        let session = Session::new(
            side,
            self.identity.clone(),
            self.config.session.clone(),
            self.auth.clone(),
            info,
            nonce,
            now,
        );
        if let Some(addr) = dialed {
            self.dialer.connected(addr, id);
        }
        self.links
            .insert(id, Link::new(session, dialed.map(str::to_owned)));
        if self.shutting_down
            && let Some(l) = self.links.get_mut(&id)
        {
            l.session
                .goodbye(now, RefuseReason::ShuttingDown, "shutting down");
        }
        self.after(now);
        id
    }

    /// Handles one frame received on `link`.
    pub fn handle_frame(&mut self, now: Instant, link: LinkId, frame: Frame) {
        self.stats.frames_in += 1;
        self.heard_from(now, link);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if let Err(error) = l.session.handle_frame(now, frame)
            && error != SessionError::Closed
        {
            self.events.push_back(Event::ProtocolError { link, error });
        }
        self.drain_session(now, link);
        self.after(now);
    }

    /// Fires due timers: link keepalives and timeouts, dials, anti-entropy, tombstone
    /// collection.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            if let Some(l) = self.links.get_mut(&id) {
                l.session.handle_timeout(now);
            }
            self.drain_session(now, id);
        }
        if now >= self.next_anti_entropy {
            self.next_anti_entropy = now + self.config.sync_interval;
            self.anti_entropy(now);
        }
        if let Some(before) = now.checked_sub(self.config.tombstone_retention) {
            let gone = self.store.collect_tombstones(before);
            self.stats.tombstones_collected += gone.len() as u64;
            for (o, uri) in gone {
                self.durable.forget(o, uri);
            }
        }
        self.after(now);
    }

    /// The transport under `link` ended (or the driver closed it): forgets the link.
    pub fn link_closed(&mut self, now: Instant, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            l.session.transport_closed();
        }
        self.drain_session(now, link);
        self.links.remove(&link);
        self.ready.remove(&link);
        self.after(now);
    }

    /// A dial asked for by [`Event::Dial`] failed.
    pub fn dial_failed(&mut self, now: Instant, addr: &str) {
        self.dialer.failed(now, addr, &self.config);
        self.after(now);
    }

    /// The attempt to `addr` failed authentication in the TLS layer (the peer refused our
    /// certificate, or we refused its own): when it ends ([`dial_failed`](Self::dial_failed)
    /// or [`link_closed`](Self::link_closed)), the retry follows the schedule of
    /// authentication refusals (1 s, 6 s, then the longest delay) rather than the connection
    /// backoff, so a peer never trips its hub's failure throttle by retrying.
    pub fn dial_auth_refused(&mut self, addr: &str) {
        self.dialer.auth_refused(addr);
    }

    /// Replaces the set of records this cluster advertises: the node diffs it against the
    /// current set and pushes the changes (new versions for new and changed URIs, tombstones
    /// for URIs no longer listed).
    pub fn advertise<I>(&mut self, now: Instant, records: I) -> AdvertiseReport
    where
        I: IntoIterator<Item = (DirectoryUri, RouteString)>,
    {
        let report = self.advertise_inner(now, records);
        self.after(now);
        report
    }

    /// The next frame to write on `link`.
    pub fn poll_frame(&mut self, link: LinkId) -> Option<Frame> {
        let frame = self.links.get_mut(&link)?.session.poll_frame();
        if frame.is_some() {
            self.stats.frames_out += 1;
        }
        frame
    }

    /// A link with frames to write, or that is finished, since the last call.
    pub fn poll_ready(&mut self) -> Option<LinkId> {
        self.ready.pop_first()
    }

    /// Whether `link` is finished: once its frames are written, close the transport and call
    /// [`link_closed`](Self::link_closed). Unknown links count as finished.
    pub fn is_finished(&self, link: LinkId) -> bool {
        self.links.get(&link).is_none_or(|l| l.session.is_closed())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().filter_map(|l| l.session.poll_timeout());
        let tomb = self
            .store
            .oldest_tombstone()
            .map(|t| t + self.config.tombstone_retention);
        let mut next = Some(self.next_anti_entropy);
        for t in links
            .chain(tomb)
            .chain(self.dialer.next_attempt(self.shutting_down))
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        next
    }

    /// Refuses `link` for a reason the driver found (an undecodable stream).
    pub fn refuse_link(&mut self, now: Instant, link: LinkId, reason: RefuseReason, detail: &str) {
        if let Some(l) = self.links.get_mut(&link) {
            l.session.refuse(now, reason, detail.to_owned());
        }
        self.drain_session(now, link);
        self.after(now);
    }

    /// Says goodbye on every link and stops dialing.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        for l in self.links.values_mut() {
            l.session
                .goodbye(now, RefuseReason::ShuttingDown, "shutting down");
        }
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            self.drain_session(now, id);
        }
        self.after(now);
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Our cluster ID.
    pub fn cluster_id(&self) -> &ClusterId {
        &self.identity.cluster_id
    }

    /// The live records we hold from `origin` (ours included), as `(uri, route string)`,
    /// sorted.
    pub fn records_of(&self, origin: &str) -> Vec<(String, String)> {
        let Some(i) = self.store.find(origin) else {
            return Vec::new();
        };
        let mut v: Vec<_> = self.store.origins[i]
            .entries
            .iter()
            .filter_map(|(u, e)| Some((u.to_string(), e.route.as_deref()?.to_owned())))
            .collect();
        v.sort();
        v
    }

    /// `(max version, live records, tombstones)` held for `origin`.
    pub fn origin_summary(&self, origin: &str) -> Option<(u64, u64, u64)> {
        let o = &self.store.origins[self.store.find(origin)?];
        Some((o.max_version, o.live, o.entries.len() as u64 - o.live))
    }

    /// Links whose handshake completed, with the peer's cluster ID.
    pub fn up_links(&self) -> Vec<(LinkId, ClusterId)> {
        self.links
            .iter()
            .filter_map(|(id, l)| Some((*id, l.peer.as_ref()?.cluster.clone())))
            .filter(|(id, _)| self.links.get(id).is_some_and(|l| l.session.is_up()))
            .collect()
    }

    // === internals ===

    /// Processes everything a link's session reported.
    fn drain_session(&mut self, now: Instant, id: LinkId) {
        loop {
            let Some(l) = self.links.get_mut(&id) else {
                return;
            };
            let Some(ev) = l.session.poll_event() else {
                return;
            };
            match ev {
                SessionEvent::Admit(peer) => {
                    let verdict = self.admit(&peer);
                    if let Some(l) = self.links.get_mut(&id) {
                        l.session.admit(now, verdict);
                    }
                }
                SessionEvent::Up { peer, pinned } => self.on_up(now, id, peer, pinned),
                SessionEvent::Message(frame) => self.on_message(now, id, frame),
                SessionEvent::Acked(seq) => self.on_acked(now, id, seq),
                SessionEvent::Refused {
                    reason,
                    detail,
                    by_peer,
                    auth,
                } => {
                    let (map, auth_map) = if by_peer {
                        (
                            &mut self.stats.refused_by_peer,
                            &mut self.stats.auth_refused_by_peer,
                        )
                    } else {
                        (
                            &mut self.stats.refused_by_us,
                            &mut self.stats.auth_refused_by_us,
                        )
                    };
                    *map.entry(reason.label()).or_default() += 1;
                    if let Some(a) = auth {
                        *auth_map.entry(a.label()).or_default() += 1;
                    }
                    let remote = l.session.link().remote.clone();
                    let side = l.session.side();
                    self.events.push_back(Event::Refused {
                        link: id,
                        remote,
                        reason,
                        detail,
                        by_peer,
                        auth,
                        side,
                    });
                    if let Some(addr) = &l.dialed {
                        self.dialer.refused(now, addr, reason, &self.config);
                    }
                }
                SessionEvent::Closed(reason) => self.on_closed(now, id, reason),
            }
        }
    }

    /// Decides whether a peer that named itself may join: the duplicate cluster ID rule.
    fn admit(&self, peer: &PeerHello) -> Result<Option<String>, Refusal> {
        let live = self.links.values().find(|l| {
            l.session.is_up()
                && l.peer
                    .as_ref()
                    .is_some_and(|p| p.cluster == peer.cluster_id && p.name != peer.cluster_name)
        });
        if let Some(other) = live.and_then(|l| l.peer.as_ref()) {
            return Err(Refusal {
                reason: RefuseReason::DuplicateClusterId,
                detail: format!(
                    "duplicate cluster ID {}: already used by cluster {:?}, which is connected; \
                     cluster {:?} needs another cluster ID",
                    peer.cluster_id, other.name, peer.cluster_name
                ),
            });
        }
        let known = self.peers.name_of(&peer.cluster_id);
        if let Some((name, PeerState::Up)) = &known
            && *name != peer.cluster_name
        {
            return Err(Refusal {
                reason: RefuseReason::DuplicateClusterId,
                detail: format!(
                    "duplicate cluster ID {}: already used by cluster {:?}, which is up in \
                         the peer vector; cluster {:?} needs another cluster ID",
                    peer.cluster_id, name, peer.cluster_name
                ),
            });
        }
        Ok(known.map(|(name, _)| name))
    }

    fn on_up(&mut self, now: Instant, id: LinkId, peer: PeerHello, pinned: Option<Vec<u8>>) {
        // A second link to the same cluster: a restarted peer replaces its old link; two live
        // links (both sides dialed at once) keep the one dialed by the smaller cluster ID.
        let me = self.identity.cluster_id.clone();
        let dup: Vec<(LinkId, bool, u64)> = self
            .links
            .iter()
            .filter(|(other, l)| **other != id && l.session.is_up())
            .filter_map(|(other, l)| {
                let p = l.peer.as_ref()?;
                (p.cluster == peer.cluster_id).then_some((*other, l.dialed.is_some(), p.instance))
            })
            .collect();
        let new_dialed = self.links.get(&id).is_some_and(|l| l.dialed.is_some());
        for (other, other_dialed, instance) in dup {
            self.stats.duplicate_links += 1;
            let keep_new = if instance != peer.instance {
                true
            } else {
                // Keep the link whose dialer is the smaller cluster ID.
                let keep_ours_dialed = me < peer.cluster_id;
                new_dialed == keep_ours_dialed && other_dialed != keep_ours_dialed
            };
            let close = if keep_new { other } else { id };
            if let Some(l) = self.links.get_mut(&close) {
                l.session
                    .goodbye(now, RefuseReason::DuplicateLink, "duplicate link");
            }
            if close == id {
                self.drain_session(now, id);
                return;
            }
            self.drain_session(now, other);
        }
        let origin = self.store.origin(&peer.cluster_id);
        if self.identity.role == Role::Hub && peer.role == Role::Spoke {
            self.store.origins[origin].via = super::records::Via::Spoke;
        }
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        l.peer = Some(LinkPeer {
            cluster: peer.cluster_id.clone(),
            name: peer.cluster_name.clone(),
            origin,
            role: peer.role,
            instance: peer.instance,
        });
        let remote = l.session.link().remote.clone();
        let side = l.session.side();
        if let Some(addr) = &l.dialed {
            self.dialer.up(addr, &peer.cluster_id);
        }
        self.stats.links_up += 1;
        self.peers.linked(now, &peer, id, &self.identity, pinned);
        self.durable.peer(&peer.cluster_id);
        self.mark_vector_dirty();
        self.send_sync_request(now, id);
        self.events.push_back(Event::PeerUp {
            link: id,
            cluster: peer.cluster_id,
            role: peer.role,
            remote,
            side,
        });
    }

    fn on_closed(&mut self, now: Instant, id: LinkId, reason: CloseReason) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        let cluster = l.peer.as_ref().map(|p| p.cluster.clone());
        let was_up = l.peer.is_some();
        if let Some(addr) = l.dialed.clone() {
            self.dialer.closed(now, &addr, was_up, &self.config);
        }
        if let Some(c) = &cluster {
            // Another link to the same cluster (a replacement) keeps it up.
            let other_up = self.links.iter().any(|(other, l)| {
                *other != id
                    && l.session.is_up()
                    && l.peer.as_ref().is_some_and(|p| p.cluster == *c)
            });
            if !other_up {
                self.peers.unlinked(now, c);
                self.durable.peer(c);
                self.mark_vector_dirty();
            }
        }
        self.ready.insert(id);
        self.events.push_back(Event::PeerDown {
            link: id,
            cluster,
            reason,
        });
    }

    /// Housekeeping after every public call: dials, queued frames, finished links.
    fn after(&mut self, now: Instant) {
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            self.pump(now, id);
        }
        if !self.shutting_down {
            let connected: HashSet<ClusterId> = self
                .links
                .values()
                .filter_map(|l| l.peer.as_ref().map(|p| p.cluster.clone()))
                .collect();
            let busy = self.links.values().any(|l| !l.session.is_closed());
            for addr in self
                .dialer
                .due(now, &self.peers, &connected, busy, &self.identity)
            {
                self.events.push_back(Event::Dial { addr });
            }
        }
        for (id, l) in &mut self.links {
            if l.session.queued() > 0 || (l.session.is_closed() && !l.finished_reported) {
                l.finished_reported |= l.session.is_closed();
                self.ready.insert(*id);
            }
        }
    }

    fn mark_vector_dirty(&mut self) {
        if self.identity.role == Role::Hub {
            for l in self.links.values_mut() {
                l.vector_dirty = true;
            }
        }
    }
}

impl Link {
    fn new(session: Session, dialed: Option<String>) -> Self {
        Self {
            session,
            dialed,
            peer: None,
            synced: false,
            cursors: HashMap::new(),
            next_origin: 0,
            sync_done_due: false,
            repairs_out: VecDeque::new(),
            repairs_in: HashMap::new(),
            in_flight: VecDeque::new(),
            acked: HashMap::new(),
            last_ack: None,
            last_sync: None,
            vector_dirty: false,
            finished_reported: false,
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("cluster", &self.identity.cluster_id)
            .field("role", &self.identity.role)
            .field("links", &self.links.len())
            .field("origins", &self.store.origins.len())
            .finish_non_exhaustive()
    }
}

/// Our own origin index, re-exported for the submodules.
const OWN: OriginIdx = SELF;
