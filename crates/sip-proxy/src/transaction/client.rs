//! Client transactions (RFC 3261 §17.1): INVITE (Timers A, B, D, plus Timer C and the
//! response timeout of a proxy) and non-INVITE (Timers E, F, K).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    ClientId, ClientKey, Event, OutgoingRequest, Owner, Peer, Slot, Timers, Transactions,
    timer_64t1,
};
use crate::message::{self, Message, Method};

#[derive(Debug)]
pub(super) struct Client {
    key: ClientKey,
    invite: bool,
    state: State,
    to: Peer,
    request: Bytes,
    /// Current retransmit interval.
    interval: Duration,
    /// Timer B/F measured from the first send.
    hard_deadline: Instant,
    retransmit: Option<Instant>,
    timeout: Option<Instant>,
    linger: Option<Instant>,
    provisional: bool,
    /// Timer C already fired and the user was told; the next timeout removes silently.
    expired: bool,
    ack: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Calling (INVITE) or Trying (non-INVITE).
    Calling,
    Proceeding,
    Completed,
    /// RFC 6026: a 2xx arrived; later 2xx retransmissions are passed up.
    Accepted,
}

impl Client {
    /// Moves the Timeout deadline to `at`. A deadline that only moves later needs no new
    /// entry: the one queued for the earlier deadline re-queues it when it comes due (see
    /// `client_timer`), so a call answered within the response timeout leaves no 180 s Timer C
    /// entry behind.
    fn set_timeout(&mut self, timers: &mut Timers, now: Instant, at: Instant, owner: Owner) {
        let queued = self.timeout.is_some_and(|t| t <= at);
        self.timeout = Some(at);
        if !queued {
            timers.schedule(now, at, owner, Slot::Timeout);
        }
    }
}

impl Transactions {
    /// Starts a client transaction and sends its request.
    pub fn send_request(&mut self, now: Instant, to: Peer, req: OutgoingRequest) -> ClientId {
        let id = self.alloc_id();
        let invite = req.method == Method::Invite;
        let key = ClientKey {
            branch: req.branch,
            method: req.method,
        };
        let hard_deadline = now + timer_64t1(&self.config);
        let mut client = Client {
            key: key.clone(),
            invite,
            state: State::Calling,
            to,
            request: req.bytes.clone(),
            interval: self.config.t1,
            hard_deadline,
            retransmit: None,
            timeout: None,
            linger: None,
            provisional: false,
            expired: false,
            ack: None,
        };
        // Timer A / E (§17.1.1.2, §17.1.2.2): only over unreliable transports.
        if !to.transport.is_reliable() {
            client.retransmit = Some(now + self.config.t1);
            self.timers.schedule(
                now,
                now + self.config.t1,
                Owner::Client(id),
                Slot::Retransmit,
            );
        }
        let timeout = if req.early_timeout {
            hard_deadline.min(now + self.config.response_timeout)
        } else {
            hard_deadline
        };
        client.timeout = Some(timeout);
        self.timers
            .schedule(now, timeout, Owner::Client(id), Slot::Timeout);
        if let Some(old) = self.client_keys.insert(key, id) {
            // A branch reused by the user: the older transaction can no longer be matched.
            self.clients.remove(&old);
        }
        self.clients.insert(id, Box::new(client));
        self.transmit_for(id, to, req.bytes);
        ClientId(id)
    }

    /// Sends a CANCEL for a pending INVITE client transaction in a new non-INVITE client
    /// transaction with the same branch (RFC 3261 §9.1). Returns `None` when the INVITE is no
    /// longer pending.
    pub fn cancel(&mut self, now: Instant, id: ClientId) -> Option<ClientId> {
        let client = self.clients.get(&id.0)?;
        if !client.invite || !matches!(client.state, State::Calling | State::Proceeding) {
            return None;
        }
        let invite = Message::parse(client.request.clone()).ok()?;
        let req = OutgoingRequest {
            method: Method::Cancel,
            branch: client.key.branch.clone(),
            bytes: message::cancel_for(&invite),
            early_timeout: false,
        };
        let to = client.to;
        Some(self.send_request(now, to, req))
    }

    /// Reports that the request of a client transaction could not be sent (connect failure,
    /// ICMP error); the transaction ends with [`Event::TransportFailed`].
    pub fn handle_transport_error(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id.0) {
            self.client_keys.remove(&client.key);
            self.events.push_back(Event::TransportFailed { id });
        }
    }

    /// Drops a client transaction without reporting anything further.
    pub fn forget_client(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id.0) {
            self.client_keys.remove(&client.key);
        }
    }

    pub(super) fn handle_response(&mut self, now: Instant, from: Peer, msg: Message) {
        let Some(status) = msg.status() else { return };
        let found = ClientKey::of_response(&msg).and_then(|k| self.client_keys.get(&k).copied());
        let Some(id) = found else {
            self.events.push_back(Event::StrayResponse { from, msg });
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            self.events.push_back(Event::StrayResponse { from, msg });
            return;
        };
        let config = &self.config;
        let owner = Owner::Client(id);
        match (client.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                let first = !client.provisional;
                client.provisional = true;
                client.state = State::Proceeding;
                if client.invite {
                    // Timer A stops; Timer C (re)starts on a provisional (§16.6 step 11, §16.7).
                    client.retransmit = None;
                    if first || status > 100 {
                        let at = now + config.timer_c;
                        client.set_timeout(&mut self.timers, now, at, owner);
                    }
                } else if first {
                    // Timer F applies from now on; Timer E continues at T2 (§17.1.2.2).
                    let at = client.hard_deadline;
                    client.set_timeout(&mut self.timers, now, at, owner);
                    if client.retransmit.is_some() {
                        client.interval = config.t2;
                    }
                }
                self.events.push_back(Event::Response {
                    id: ClientId(id),
                    msg,
                });
            }
            (State::Calling | State::Proceeding, 200..=299) if client.invite => {
                client.state = State::Accepted;
                client.retransmit = None;
                client.timeout = None;
                // Never retransmitted again: free it for the 32 s the transaction lingers.
                client.request = Bytes::new();
                let at = now + timer_64t1(config);
                client.linger = Some(at);
                self.timers.schedule(now, at, owner, Slot::Linger);
                self.events.push_back(Event::Response {
                    id: ClientId(id),
                    msg,
                });
            }
            (State::Accepted, 200..=299) => {
                self.events.push_back(Event::Response {
                    id: ClientId(id),
                    msg,
                });
            }
            (State::Calling | State::Proceeding, _) if status >= 200 => {
                client.state = State::Completed;
                client.retransmit = None;
                client.timeout = None;
                let reliable = client.to.transport.is_reliable();
                if client.invite {
                    // §17.1.1.3: ACK the non-2xx final; Timer D absorbs retransmissions.
                    if let Ok(invite) = Message::parse(client.request.clone()) {
                        let ack = message::ack_for(&invite, &msg);
                        client.ack = Some(ack.clone());
                        let to = client.to;
                        self.transmits.push_back(super::Transmit {
                            to,
                            bytes: ack,
                            client: Some(ClientId(id)),
                        });
                    }
                }
                // Never retransmitted again (the ACK above is built): free it while lingering.
                client.request = Bytes::new();
                let linger = match (reliable, client.invite) {
                    (true, _) => Duration::ZERO,
                    (false, true) => TIMER_D,
                    (false, false) => config.t4,
                };
                if linger.is_zero() {
                    let key = client.key.clone();
                    self.clients.remove(&id);
                    self.client_keys.remove(&key);
                } else {
                    client.linger = Some(now + linger);
                    self.timers.schedule(now, now + linger, owner, Slot::Linger);
                }
                self.events.push_back(Event::Response {
                    id: ClientId(id),
                    msg,
                });
            }
            (State::Completed, 200..=699) => {
                // A retransmitted final response: resend the ACK, tell nobody.
                if let Some(ack) = client.ack.clone() {
                    let to = client.to;
                    self.transmits.push_back(super::Transmit {
                        to,
                        bytes: ack,
                        client: Some(ClientId(id)),
                    });
                }
            }
            _ => {}
        }
    }

    pub(super) fn client_timer(&mut self, now: Instant, id: u64, at: Instant, slot: Slot) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let owner = Owner::Client(id);
        match slot {
            Slot::Retransmit if client.retransmit == Some(at) => {
                let bytes = client.request.clone();
                let to = client.to;
                client.interval = if client.invite {
                    client.interval * 2
                } else if client.state == State::Proceeding {
                    self.config.t2
                } else {
                    (client.interval * 2).min(self.config.t2)
                };
                let next = now + client.interval;
                client.retransmit = Some(next);
                self.timers.schedule(now, next, owner, Slot::Retransmit);
                self.transmit_for(id, to, bytes);
            }
            Slot::Timeout if client.timeout == Some(at) => {
                if client.expired || !client.invite || !client.provisional {
                    let key = client.key.clone();
                    let report = !client.expired;
                    let provisional = client.provisional;
                    self.clients.remove(&id);
                    self.client_keys.remove(&key);
                    if report {
                        self.events.push_back(Event::TimedOut {
                            id: ClientId(id),
                            provisional,
                        });
                    }
                } else {
                    // Timer C: the user CANCELs; keep the transaction to receive the 487.
                    client.expired = true;
                    let at = now + timer_64t1(&self.config);
                    client.timeout = Some(at);
                    self.timers.schedule(now, at, owner, Slot::Timeout);
                    self.events.push_back(Event::TimedOut {
                        id: ClientId(id),
                        provisional: true,
                    });
                }
            }
            // A deadline moved later without a new entry (Timer C): queue it now.
            Slot::Timeout if client.timeout.is_some_and(|t| t > at) => {
                if let Some(later) = client.timeout {
                    self.timers.schedule(now, later, owner, Slot::Timeout);
                }
            }
            Slot::Linger if client.linger == Some(at) => {
                let key = client.key.clone();
                self.clients.remove(&id);
                self.client_keys.remove(&key);
            }
            _ => {}
        }
    }
}

/// Timer D: at least 32 s for unreliable transports (§17.1.1.2).
pub(super) const TIMER_D: Duration = Duration::from_secs(32);
