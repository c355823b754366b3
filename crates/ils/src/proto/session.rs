//! One replication link's protocol state: handshake, keepalive, idle timeout and the
//! flow-control window for `Records`. Owns no socket and reads no clock.
//!
//! The session knows nothing about records or the peer vector: once the link is up it hands
//! replication messages to its owner (the [`Node`](super::Node)) as events and sends what the
//! owner gives it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, Role, RouteString};

use super::handshake::{
    AuthContext, AuthError, AuthFailure, Authenticator, LinkInfo, LocalIdentity, NONCE_LEN,
    PeerHello, Side,
};
use super::wire::{
    Accept, Ack, Confirm, Frame, Goodbye, Hello, Keepalive, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    Records, Refuse, RefuseReason, Welcome, WireRole,
};

/// Timers and limits of one link.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Send a keepalive after this long without sending anything.
    pub keepalive: Duration,
    /// Close the link after this long without receiving anything.
    pub idle_timeout: Duration,
    /// Close the link if the handshake has not completed after this long.
    pub handshake_timeout: Duration,
    /// `Records` frames sent and not yet acknowledged, at most.
    pub window: usize,
    /// Frames queued for the transport, at most; beyond it the peer is too slow and the link
    /// is closed.
    pub max_queued_frames: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            handshake_timeout: Duration::from_secs(10),
            window: 8,
            max_queued_frames: 1024,
        }
    }
}

/// What a session tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The peer named itself: the owner checks it (duplicate cluster IDs) and calls
    /// [`Session::admit`].
    Admit(PeerHello),
    /// The handshake completed.
    Up {
        /// Who the peer is.
        peer: PeerHello,
        /// The peer's certificate (DER), when the password alone vouched for it and the
        /// authenticator pinned it.
        pinned: Option<Vec<u8>>,
    },
    /// A replication message from the peer.
    Message(Frame),
    /// The peer acknowledged `Records` frames up to this sequence number.
    Acked(u64),
    /// The link was refused, by us (`by_peer == false`) or by the peer.
    Refused {
        /// The reason code.
        reason: RefuseReason,
        /// The sentence for the log.
        detail: String,
        /// Whether the peer refused us.
        by_peer: bool,
        /// With `BadAuth`: the specific authentication failure.
        auth: Option<AuthFailure>,
    },
    /// The link is finished; flush the queued frames and close the transport.
    Closed(CloseReason),
}

/// Why a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Refused during or after the handshake.
    Refused {
        /// The reason code.
        reason: RefuseReason,
        /// Whether the peer refused us.
        by_peer: bool,
    },
    /// Closed on purpose (shutdown, duplicate link).
    Goodbye {
        /// Why.
        reason: RefuseReason,
        /// Whether the peer said goodbye.
        by_peer: bool,
    },
    /// Nothing received for the idle timeout.
    IdleTimeout,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// The transport ended (connection reset, end of stream, I/O error).
    Transport,
}

/// The peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A message that is not allowed in the current state.
    #[error("unexpected {message} while {state}")]
    Unexpected {
        /// The message received.
        message: &'static str,
        /// The session state.
        state: &'static str,
    },
    /// A field holds a value we cannot accept.
    #[error("bad {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The link is already closed.
    #[error("link closed")]
    Closed,
}

/// A refusal decided by the session's owner (see [`Session::admit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code.
    pub reason: RefuseReason,
    /// The sentence for both logs.
    pub detail: String,
}

/// One replication link's protocol state.
pub struct Session {
    side: Side,
    local: Arc<LocalIdentity>,
    config: SessionConfig,
    auth: Arc<dyn Authenticator>,
    link: LinkInfo,
    state: State,
    /// Set once `Closed` has been reported; the state may be `Closed` for a moment before.
    finished: bool,
    nonce: [u8; NONCE_LEN],
    peer_nonce: Vec<u8>,
    queue: VecDeque<Frame>,
    events: VecDeque<SessionEvent>,
    started: Instant,
    last_rx: Instant,
    last_tx: Instant,
    next_seq: u64,
    acked_seq: u64,
}

enum State {
    AwaitHello,
    AwaitWelcome,
    /// Waiting for the owner's [`Session::admit`].
    Admitting(PeerHello),
    /// Acceptor: `Welcome` sent, waiting for the dialer's proof.
    AwaitConfirm(Admitted),
    /// Dialer: our proof sent, waiting for the acceptor's.
    AwaitAccept(Admitted),
    Up(PeerHello),
    Closed,
}

/// A peer the owner and the authenticator admitted, while the proofs are exchanged.
struct Admitted {
    peer: PeerHello,
    known_name: Option<String>,
    password: bool,
}

impl Session {
    /// A new link. A dialer queues its `Hello` at once; an acceptor waits for one.
    ///
    /// `nonce` must be fresh and unpredictable ([`fresh_nonce`](super::fresh_nonce)).
    pub fn new(
        side: Side,
        local: Arc<LocalIdentity>,
        config: SessionConfig,
        auth: Arc<dyn Authenticator>,
        link: LinkInfo,
        nonce: [u8; NONCE_LEN],
        now: Instant,
    ) -> Self {
        let mut s = Self {
            side,
            local,
            config,
            auth,
            link,
            state: State::AwaitHello,
            finished: false,
            nonce,
            peer_nonce: Vec::new(),
            queue: VecDeque::new(),
            events: VecDeque::new(),
            started: now,
            last_rx: now,
            last_tx: now,
            next_seq: 1,
            acked_seq: 0,
        };
        if side == Side::Dialer {
            s.state = State::AwaitWelcome;
            let hello = Hello {
                min_version: MIN_PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                cluster_id: s.local.cluster_id.to_string(),
                cluster_name: s.local.cluster_name.clone(),
                role: WireRole::from_role(s.local.role) as i32,
                route_strings: s
                    .local
                    .route_strings
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                nonce: s.nonce.to_vec(),
                instance: s.local.instance,
                addresses: s.local.addresses.clone(),
            };
            s.push(now, Frame::Hello(hello));
        }
        s
    }

    /// Handles one frame from the peer.
    ///
    /// A protocol violation refuses the link (`ProtocolError`) and is also returned, for the
    /// caller's log.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::Closed);
        }
        self.last_rx = now;
        let result = self.dispatch(now, frame);
        if let Err(e) = &result {
            self.refuse(now, RefuseReason::ProtocolError, e.to_string());
        }
        result
    }

    /// Fires due timers: keepalive, idle timeout, handshake timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => {}
            State::Up(_) => {
                if now >= self.last_rx + self.config.idle_timeout {
                    self.close(CloseReason::IdleTimeout);
                } else if now >= self.last_tx + self.config.keepalive {
                    self.push(now, Frame::Keepalive(Keepalive {}));
                }
            }
            _ => {
                if now >= self.started + self.config.handshake_timeout {
                    self.close(CloseReason::HandshakeTimeout);
                }
            }
        }
    }

    /// The next frame to write to the transport.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.queue.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Up(_) => Some(
                (self.last_rx + self.config.idle_timeout).min(self.last_tx + self.config.keepalive),
            ),
            _ => Some(self.started + self.config.handshake_timeout),
        }
    }

    /// The owner's verdict on the peer named in the last [`SessionEvent::Admit`].
    ///
    /// `known_name` is the cluster name the peer vector holds for the peer's cluster ID.
    pub fn admit(&mut self, now: Instant, verdict: Result<Option<String>, Refusal>) {
        if !matches!(self.state, State::Admitting(..)) {
            return;
        }
        let State::Admitting(peer) = std::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        let known_name = match verdict {
            Ok(name) => name,
            Err(r) => return self.refuse(now, r.reason, r.detail),
        };
        let mut adm = Admitted {
            peer,
            known_name,
            password: false,
        };
        let auth = self.auth.clone();
        let admission = auth.admit(&self.ctx(&adm));
        match admission {
            Ok(a) => adm.password = a.password_required,
            Err(e) => return self.refuse_auth(now, e),
        }
        match self.side {
            Side::Acceptor => {
                let welcome = Welcome {
                    version: adm.peer.version,
                    cluster_id: self.local.cluster_id.to_string(),
                    cluster_name: self.local.cluster_name.clone(),
                    role: WireRole::from_role(self.local.role) as i32,
                    route_strings: self
                        .local
                        .route_strings
                        .iter()
                        .map(|r| r.to_string())
                        .collect(),
                    nonce: self.nonce.to_vec(),
                    instance: self.local.instance,
                    addresses: self.local.addresses.clone(),
                };
                self.push(now, Frame::Welcome(welcome));
                self.state = State::AwaitConfirm(adm);
            }
            Side::Dialer => {
                // The dialer proves first.
                let proof = if adm.password {
                    match auth.prove(&self.ctx(&adm)) {
                        Ok(p) => p,
                        Err(e) => return self.refuse_auth(now, e),
                    }
                } else {
                    Vec::new()
                };
                self.push(now, Frame::Confirm(Confirm { auth_proof: proof }));
                self.state = State::AwaitAccept(adm);
            }
        }
    }

    /// Queues a replication message (not `Records`: see [`send_records`](Self::send_records)).
    pub fn send(&mut self, now: Instant, frame: Frame) {
        if self.is_up() {
            self.push(now, frame);
        }
    }

    /// Whether another `Records` frame fits in the flow-control window.
    pub fn can_send_records(&self) -> bool {
        self.is_up() && self.in_flight() < self.config.window as u64
    }

    /// Queues a `Records` frame, giving it the next sequence number, which is returned.
    pub fn send_records(&mut self, now: Instant, mut records: Records) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        records.seq = seq;
        self.push(now, Frame::Records(records));
        seq
    }

    /// Acknowledges the peer's `Records` up to `seq` (after applying them).
    pub fn ack(&mut self, now: Instant, seq: u64) {
        self.send(now, Frame::Ack(Ack { seq }));
    }

    /// `Records` frames sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.next_seq - 1 - self.acked_seq
    }

    /// Refuses the link: sends `Refuse`, reports it and closes.
    pub fn refuse(&mut self, now: Instant, reason: RefuseReason, detail: String) {
        self.refuse_with(now, reason, detail, None);
    }

    fn refuse_with(
        &mut self,
        now: Instant,
        reason: RefuseReason,
        detail: String,
        auth: Option<AuthFailure>,
    ) {
        if self.finished {
            return;
        }
        self.push(
            now,
            Frame::Refuse(Refuse {
                reason: reason as i32,
                detail: detail.clone(),
                auth_code: auth.map(|a| a.label().to_owned()).unwrap_or_default(),
            }),
        );
        self.events.push_back(SessionEvent::Refused {
            reason,
            detail,
            by_peer: false,
            auth,
        });
        self.close(CloseReason::Refused {
            reason,
            by_peer: false,
        });
    }

    /// Closes the link on purpose, telling the peer why.
    pub fn goodbye(&mut self, now: Instant, reason: RefuseReason, detail: &str) {
        if self.finished {
            return;
        }
        let frame = Frame::Goodbye(Goodbye {
            reason: reason as i32,
            detail: detail.to_owned(),
        });
        self.push(now, frame);
        self.close(CloseReason::Goodbye {
            reason,
            by_peer: false,
        });
    }

    /// The transport ended under the session.
    pub fn transport_closed(&mut self) {
        self.close(CloseReason::Transport);
    }

    /// The peer, once it has named itself.
    pub fn peer(&self) -> Option<&PeerHello> {
        match &self.state {
            State::Admitting(p) | State::Up(p) => Some(p),
            State::AwaitConfirm(a) | State::AwaitAccept(a) => Some(&a.peer),
            _ => None,
        }
    }

    /// Whether the handshake has completed and the link is open.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    /// Whether the link is finished.
    pub fn is_closed(&self) -> bool {
        self.finished
    }

    /// Our end of the link.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The transport's facts.
    pub fn link(&self) -> &LinkInfo {
        &self.link
    }

    /// Frames queued for the transport.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    // === internals ===

    fn dispatch(&mut self, now: Instant, frame: Frame) -> Result<(), SessionError> {
        match (&self.state, frame) {
            (_, Frame::Refuse(r)) => {
                let reason = RefuseReason::from_wire(r.reason);
                let auth = (reason == RefuseReason::BadAuth)
                    .then(|| AuthFailure::from_label(&r.auth_code));
                self.events.push_back(SessionEvent::Refused {
                    reason,
                    detail: r.detail,
                    by_peer: true,
                    auth,
                });
                self.close(CloseReason::Refused {
                    reason,
                    by_peer: true,
                });
            }
            (_, Frame::Goodbye(g)) => self.close(CloseReason::Goodbye {
                reason: RefuseReason::from_wire(g.reason),
                by_peer: true,
            }),
            (_, Frame::Keepalive(_)) => {}
            (State::AwaitHello, Frame::Hello(h)) => self.on_hello(now, h)?,
            (State::AwaitWelcome, Frame::Welcome(w)) => self.on_welcome(now, w)?,
            (State::AwaitConfirm(_), Frame::Confirm(c)) => self.on_proof(now, &c.auth_proof),
            (State::AwaitAccept(_), Frame::Accept(a)) => self.on_proof(now, &a.auth_proof),
            (State::Up(_), Frame::Ack(a)) => {
                if a.seq >= self.next_seq || a.seq < self.acked_seq {
                    return Err(SessionError::BadValue {
                        field: "Ack.seq",
                        reason: format!("{} outside {}..{}", a.seq, self.acked_seq, self.next_seq),
                    });
                }
                self.acked_seq = a.seq;
                self.events.push_back(SessionEvent::Acked(a.seq));
            }
            (
                State::Up(_),
                f @ (Frame::PeerVector(_)
                | Frame::SyncRequest(_)
                | Frame::Records(_)
                | Frame::SyncDone(_)
                | Frame::Digest(_)
                | Frame::RepairRequest(_)
                | Frame::RepairDone(_)),
            ) => self.events.push_back(SessionEvent::Message(f)),
            (state, f) => {
                return Err(SessionError::Unexpected {
                    message: f.name(),
                    state: state.name(),
                });
            }
        }
        Ok(())
    }

    fn on_hello(&mut self, now: Instant, h: Hello) -> Result<(), SessionError> {
        let common = PROTOCOL_VERSION.min(h.max_version);
        if common < MIN_PROTOCOL_VERSION.max(h.min_version) {
            let detail = format!(
                "no common protocol version: we speak {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}, \
                 the peer {}..={}",
                h.min_version, h.max_version
            );
            self.refuse(now, RefuseReason::VersionMismatch, detail);
            return Ok(());
        }
        self.peer_nonce = check_nonce(h.nonce)?;
        let peer = self.peer_hello(
            &h.cluster_id,
            h.cluster_name,
            h.role,
            &h.route_strings,
            h.addresses,
            h.instance,
            common,
        )?;
        if let Some(r) = self.check_roles(&peer) {
            self.refuse(now, r.reason, r.detail);
            return Ok(());
        }
        self.events.push_back(SessionEvent::Admit(peer.clone()));
        self.state = State::Admitting(peer);
        Ok(())
    }

    fn on_welcome(&mut self, now: Instant, w: Welcome) -> Result<(), SessionError> {
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&w.version) {
            let detail = format!(
                "the peer chose protocol version {}, we speak \
                 {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}",
                w.version
            );
            self.refuse(now, RefuseReason::VersionMismatch, detail);
            return Ok(());
        }
        self.peer_nonce = check_nonce(w.nonce)?;
        let peer = self.peer_hello(
            &w.cluster_id,
            w.cluster_name,
            w.role,
            &w.route_strings,
            w.addresses,
            w.instance,
            w.version,
        )?;
        if let Some(r) = self.check_roles(&peer) {
            self.refuse(now, r.reason, r.detail);
            return Ok(());
        }
        self.events.push_back(SessionEvent::Admit(peer.clone()));
        self.state = State::Admitting(peer);
        Ok(())
    }

    /// The peer's proof: the dialer's in `Confirm` (the acceptor verifies it, then proves),
    /// or the acceptor's in `Accept` (the dialer verifies it).
    fn on_proof(&mut self, now: Instant, proof: &[u8]) {
        let adm = match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitConfirm(a) | State::AwaitAccept(a) => a,
            other => {
                self.state = other;
                return;
            }
        };
        let auth = self.auth.clone();
        if adm.password
            && let Err(e) = auth.verify(&self.ctx(&adm), proof)
        {
            return self.refuse_auth(now, e);
        }
        if self.side == Side::Acceptor {
            let proof = if adm.password {
                match auth.prove(&self.ctx(&adm)) {
                    Ok(p) => p,
                    Err(e) => return self.refuse_auth(now, e),
                }
            } else {
                Vec::new()
            };
            self.push(now, Frame::Accept(Accept { auth_proof: proof }));
        }
        let pinned = auth.established(&self.ctx(&adm));
        self.events.push_back(SessionEvent::Up {
            peer: adm.peer.clone(),
            pinned,
        });
        self.state = State::Up(adm.peer);
    }

    fn ctx<'a>(&'a self, adm: &'a Admitted) -> AuthContext<'a> {
        let (dialer_nonce, acceptor_nonce) = match self.side {
            Side::Dialer => (&self.nonce[..], &self.peer_nonce[..]),
            Side::Acceptor => (&self.peer_nonce[..], &self.nonce[..]),
        };
        AuthContext {
            side: self.side,
            link: &self.link,
            dialer_nonce,
            acceptor_nonce,
            local: &self.local.cluster_id,
            peer: &adm.peer,
            known_name: adm.known_name.as_deref(),
        }
    }

    /// Refuses the link for an authentication failure, telling the peer its code.
    fn refuse_auth(&mut self, now: Instant, e: AuthError) {
        self.refuse_with(now, RefuseReason::BadAuth, e.to_string(), Some(e.failure));
    }

    #[allow(clippy::too_many_arguments, reason = "one call per handshake message")]
    fn peer_hello(
        &self,
        cluster_id: &str,
        cluster_name: String,
        role: i32,
        route_strings: &[String],
        addresses: Vec<String>,
        instance: u64,
        version: u32,
    ) -> Result<PeerHello, SessionError> {
        let cluster_id = ClusterId::new(cluster_id).map_err(|e| SessionError::BadValue {
            field: "cluster_id",
            reason: e.to_string(),
        })?;
        let role = WireRole::to_role(role).ok_or(SessionError::BadValue {
            field: "role",
            reason: format!("unknown role {role}"),
        })?;
        Ok(PeerHello {
            cluster_id,
            cluster_name,
            role,
            route_strings: route_strings
                .iter()
                .filter_map(|r| RouteString::new(r).ok())
                .collect(),
            addresses,
            instance,
            version,
        })
    }

    /// The role rules every link must satisfy, whoever dialed.
    fn check_roles(&self, peer: &PeerHello) -> Option<Refusal> {
        let refusal = |reason, detail: String| Some(Refusal { reason, detail });
        if peer.cluster_id == self.local.cluster_id {
            return refusal(
                RefuseReason::DuplicateClusterId,
                format!(
                    "duplicate cluster ID {}: cluster {:?} and cluster {:?} both use it; \
                     every cluster needs a unique cluster ID",
                    peer.cluster_id, self.local.cluster_name, peer.cluster_name
                ),
            );
        }
        if peer.role == Role::Standalone {
            return refusal(
                RefuseReason::RoleNotAllowed,
                format!(
                    "cluster {} is standalone and takes no part in ILS",
                    peer.cluster_id
                ),
            );
        }
        // Whoever accepts must be a hub; a dialer may be a hub or a spoke.
        let (joiner, acceptor_id, acceptor_role) = match self.side {
            Side::Acceptor => (peer.role, &self.local.cluster_id, self.local.role),
            Side::Dialer => (self.local.role, &peer.cluster_id, peer.role),
        };
        if acceptor_role != Role::Hub {
            return refusal(
                RefuseReason::NotAHub,
                format!(
                    "a {joiner} must join through a hub, and cluster {acceptor_id} is a \
                     {acceptor_role}"
                ),
            );
        }
        None
    }

    fn push(&mut self, now: Instant, frame: Frame) {
        if self.queue.len() >= self.config.max_queued_frames {
            // The transport is not draining: the peer does not read. Close rather than grow.
            self.queue.clear();
            self.events.push_back(SessionEvent::Refused {
                reason: RefuseReason::Overloaded,
                detail: format!(
                    "peer did not read: {} frames queued",
                    self.config.max_queued_frames
                ),
                by_peer: false,
                auth: None,
            });
            self.close(CloseReason::Refused {
                reason: RefuseReason::Overloaded,
                by_peer: false,
            });
            return;
        }
        self.last_tx = now;
        self.queue.push_back(frame);
    }

    fn close(&mut self, reason: CloseReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.state = State::Closed;
        self.events.push_back(SessionEvent::Closed(reason));
    }
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::AwaitHello => "awaiting Hello",
            Self::AwaitWelcome => "awaiting Welcome",
            Self::Admitting(..) => "admitting the peer",
            Self::AwaitConfirm(_) => "awaiting Confirm",
            Self::AwaitAccept(_) => "awaiting Accept",
            Self::Up(_) => "up",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("side", &self.side)
            .field("state", &self.state.name())
            .field("remote", &self.link.remote)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

/// A peer's nonce: exactly [`NONCE_LEN`] bytes.
fn check_nonce(nonce: Vec<u8>) -> Result<Vec<u8>, SessionError> {
    if nonce.len() == NONCE_LEN {
        Ok(nonce)
    } else {
        Err(SessionError::BadValue {
            field: "nonce",
            reason: format!("{} bytes, expected {NONCE_LEN}", nonce.len()),
        })
    }
}
