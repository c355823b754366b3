//! Server transactions (RFC 3261 §17.2): INVITE (Timers G, H, I, and L of RFC 6026) and
//! non-INVITE (Timer J). Retransmitted requests are absorbed and answered with the last
//! response.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Event, Owner, Peer, ServerId, ServerKey, Slot, Transactions, timer_64t1};
use crate::message::{Message, Method, ResponseBuilder};

#[derive(Debug)]
pub(super) struct Server {
    key: ServerKey,
    invite: bool,
    state: State,
    reply_to: Peer,
    last_response: Option<Bytes>,
    interval: Duration,
    retransmit: Option<Instant>,
    timeout: Option<Instant>,
    linger: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Non-INVITE Trying; INVITE starts in Proceeding.
    Trying,
    Proceeding,
    Completed,
    /// INVITE: the ACK arrived (Timer I).
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026 Timer L).
    Accepted,
}

impl Transactions {
    /// Sends a response in a server transaction and advances its state. Responses for a
    /// terminated transaction are dropped; 2xx retransmissions for an accepted INVITE are sent.
    pub fn respond(&mut self, now: Instant, id: ServerId, status: u16, bytes: Bytes) {
        let Some(server) = self.servers.get_mut(&id.0) else {
            return;
        };
        let owner = Owner::Server(id.0);
        let to = server.reply_to;
        let reliable = to.transport.is_reliable();
        match (server.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                server.state = State::Proceeding;
                server.last_response = Some(bytes.clone());
            }
            (State::Trying | State::Proceeding, 200..=299) if server.invite => {
                server.state = State::Accepted;
                server.last_response = None;
                let at = now + timer_64t1(&self.config);
                server.linger = Some(at);
                self.timers.schedule(now, at, owner, Slot::Linger);
            }
            (State::Accepted, 200..=299) => {}
            (State::Trying | State::Proceeding, 200..=699) => {
                server.state = State::Completed;
                server.last_response = Some(bytes.clone());
                if server.invite {
                    // Timer G retransmits over UDP, Timer H waits for the ACK (§17.2.1).
                    if !reliable {
                        server.interval = self.config.t1;
                        let at = now + self.config.t1;
                        server.retransmit = Some(at);
                        self.timers.schedule(now, at, owner, Slot::Retransmit);
                    }
                    let at = now + timer_64t1(&self.config);
                    server.timeout = Some(at);
                    self.timers.schedule(now, at, owner, Slot::Timeout);
                } else if reliable {
                    let key = server.key.clone();
                    self.servers.remove(&id.0);
                    self.server_keys.remove(&key);
                } else {
                    // Timer J (§17.2.2).
                    let at = now + timer_64t1(&self.config);
                    server.linger = Some(at);
                    self.timers.schedule(now, at, owner, Slot::Linger);
                }
            }
            _ => return,
        }
        self.transmit(to, bytes);
    }

    /// Drops a server transaction without responding (RFC 4320: no 408 to a non-INVITE).
    pub fn forget_server(&mut self, id: ServerId) {
        if let Some(server) = self.servers.remove(&id.0) {
            self.server_keys.remove(&server.key);
        }
    }

    /// True while the server transaction exists.
    pub fn server_exists(&self, id: ServerId) -> bool {
        self.servers.contains_key(&id.0)
    }

    pub(super) fn handle_request(&mut self, now: Instant, from: Peer, msg: Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let Some(key) = ServerKey::of_request(&msg, None) else {
            return;
        };
        if let Some(&id) = self.server_keys.get(&key) {
            self.retransmitted_request(now, id, from, msg, method == Method::Ack);
            return;
        }
        if method == Method::Ack {
            self.events.push_back(Event::Ack { from, msg });
            return;
        }
        let id = self.alloc_id();
        let invite = method == Method::Invite;
        let key = key.detached();
        let mut server = Server {
            key: key.clone(),
            invite,
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            reply_to: reply_address(from, &msg),
            last_response: None,
            interval: self.config.t1,
            retransmit: None,
            timeout: None,
            linger: None,
        };
        if invite && self.config.send_trying {
            // RFC 3261 §16.2: a stateful proxy answers an INVITE with 100 Trying at once.
            let trying = ResponseBuilder::new(&msg, 100, "Trying").build();
            server.last_response = Some(trying.clone());
            self.transmit(server.reply_to, trying);
        }
        self.servers.insert(id, Box::new(server));
        self.server_keys.insert(key, id);
        if method == Method::Cancel {
            let invite = ServerKey::of_request(&msg, Some(Method::Invite))
                .and_then(|k| self.server_keys.get(&k))
                .map(|&i| ServerId(i));
            self.events.push_back(Event::Cancel {
                id: ServerId(id),
                invite,
                from,
                msg,
            });
        } else {
            self.events.push_back(Event::Request {
                id: ServerId(id),
                from,
                msg,
            });
        }
    }

    fn retransmitted_request(
        &mut self,
        now: Instant,
        id: u64,
        from: Peer,
        msg: Message,
        ack: bool,
    ) {
        let Some(server) = self.servers.get_mut(&id) else {
            return;
        };
        if !ack {
            // §17.2.1, §17.2.2: a retransmission gets the last response again.
            if let Some(last) = server.last_response.clone() {
                let to = server.reply_to;
                self.transmit(to, last);
            }
            return;
        }
        match server.state {
            State::Completed => {
                server.state = State::Confirmed;
                server.retransmit = None;
                server.timeout = None;
                if server.reply_to.transport.is_reliable() {
                    let key = server.key.clone();
                    self.servers.remove(&id);
                    self.server_keys.remove(&key);
                } else {
                    // Timer I absorbs further ACK retransmissions.
                    let at = now + self.config.t4;
                    server.linger = Some(at);
                    self.timers
                        .schedule(now, at, Owner::Server(id), Slot::Linger);
                }
            }
            State::Confirmed => {}
            // An ACK for a 2xx that reused the INVITE branch: end to end, pass it up.
            _ => self.events.push_back(Event::Ack { from, msg }),
        }
    }

    pub(super) fn server_timer(&mut self, now: Instant, id: u64, at: Instant, slot: Slot) {
        let Some(server) = self.servers.get_mut(&id) else {
            return;
        };
        match slot {
            Slot::Retransmit if server.retransmit == Some(at) => {
                server.interval = (server.interval * 2).min(self.config.t2);
                let next = now + server.interval;
                server.retransmit = Some(next);
                self.timers
                    .schedule(now, next, Owner::Server(id), Slot::Retransmit);
                if let Some(last) = server.last_response.clone() {
                    let to = server.reply_to;
                    self.transmit(to, last);
                }
            }
            Slot::Timeout if server.timeout == Some(at) => {
                let key = server.key.clone();
                self.servers.remove(&id);
                self.server_keys.remove(&key);
                self.events
                    .push_back(Event::AckTimedOut { id: ServerId(id) });
            }
            Slot::Linger if server.linger == Some(at) => {
                let key = server.key.clone();
                self.servers.remove(&id);
                self.server_keys.remove(&key);
            }
            _ => {}
        }
    }
}

/// Where responses go (RFC 3261 §18.2.2, RFC 3581 §4): back over the connection for TCP and
/// TLS; for UDP to the source address, and to the source port when the top Via asked for
/// `rport`, else to the sent-by port.
fn reply_address(from: Peer, msg: &Message) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    let Ok(via) = msg.top_via() else { return from };
    if via.rport().is_some() {
        return from;
    }
    let port = via.port().unwrap_or(5060);
    Peer {
        transport: from.transport,
        addr: SocketAddr::new(from.addr.ip(), port),
    }
}
