//! Trunk destinations: what each trunk's destinations resolve to, and whether each is up.
//!
//! [`TrunkTable`] is shared between the daemon's [`Route`](crate::Route) implementation, which
//! asks it for a trunk's destinations in failover order, and the [`monitor`] task, which
//! resolves names (DNS SRV with priority and weight, or A/AAAA) and sends OPTIONS pings.
//! Health follows CUCM: a destination is down after a ping gets no answer, `408` or `503`, or
//! a connect fails; any other answer brings it up. Down destinations are skipped; when none is
//! left the proxy answers `503`.

pub mod monitor;
mod srv;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::proxy::Event;
use crate::transaction::{Peer, Transport};

pub use srv::{SrvTarget, order_srv};

/// One configured destination of a trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationSpec {
    /// An address, used as it is.
    Addr(SocketAddr),
    /// A host name and port, resolved with A/AAAA lookups.
    HostPort {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
    /// A DNS SRV name such as `_sip._udp.example.com`, resolved per RFC 2782.
    Srv(String),
}

/// A trunk's destinations and health checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkSpec {
    /// Destinations in failover order (at most 16 in CUCM).
    pub destinations: Vec<DestinationSpec>,
    /// The transport used toward the trunk.
    pub transport: Transport,
    /// OPTIONS ping interval; `None` disables pings, and then destinations are never marked
    /// down (nothing would bring them back up).
    pub ping_interval: Option<Duration>,
}

/// The health of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not pinged yet; treated as up.
    Unknown,
    /// Answered.
    Up,
    /// Failed a ping or a request.
    Down,
}

/// Every trunk's resolved destinations and their health. Shared; all methods take `&self`.
#[derive(Debug, Default)]
pub struct TrunkTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    trunks: HashMap<String, Trunk>,
    health: HashMap<Peer, Health>,
}

#[derive(Debug)]
struct Trunk {
    spec: TrunkSpec,
    /// Resolved destinations in failover order.
    resolved: Vec<Peer>,
}

impl TrunkTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a trunk. Address destinations are usable at once; names wait for
    /// [`TrunkTable::set_resolved`].
    pub fn set(&self, name: &str, spec: TrunkSpec) {
        let resolved = spec
            .destinations
            .iter()
            .filter_map(|d| match d {
                DestinationSpec::Addr(addr) => Some(Peer {
                    transport: spec.transport,
                    addr: *addr,
                }),
                _ => None,
            })
            .collect();
        self.lock()
            .trunks
            .insert(name.to_owned(), Trunk { spec, resolved });
    }

    /// Removes a trunk.
    pub fn remove(&self, name: &str) {
        self.lock().trunks.remove(name);
    }

    /// Sets what a trunk's destinations resolved to, in failover order.
    pub fn set_resolved(&self, name: &str, resolved: Vec<Peer>) {
        if let Some(trunk) = self.lock().trunks.get_mut(name) {
            trunk.resolved = resolved;
        }
    }

    /// The trunk's destinations to try, in order, without those that are down. Empty when
    /// the trunk is unknown or every destination is down.
    pub fn destinations(&self, name: &str) -> Vec<Peer> {
        let inner = self.lock();
        let Some(trunk) = inner.trunks.get(name) else {
            return Vec::new();
        };
        trunk
            .resolved
            .iter()
            .filter(|p| inner.health.get(p).copied().unwrap_or(Health::Unknown) != Health::Down)
            .copied()
            .collect()
    }

    /// The health of one destination.
    pub fn health(&self, peer: Peer) -> Health {
        self.lock()
            .health
            .get(&peer)
            .copied()
            .unwrap_or(Health::Unknown)
    }

    /// Every trunk's resolved destinations with their health, for metrics.
    pub fn snapshot(&self) -> Vec<(String, Peer, Health)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (name, trunk) in &inner.trunks {
            for peer in &trunk.resolved {
                let health = inner.health.get(peer).copied().unwrap_or(Health::Unknown);
                out.push((name.clone(), *peer, health));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Updates health from a proxy event. Only trunk destinations have a health: an event
    /// about anyone else (a phone reached inside a dialog) is ignored.
    pub fn observe(&self, event: &Event) {
        let mut inner = self.lock();
        let peer = event.peer();
        if !inner.trunks.values().any(|t| t.resolved.contains(&peer)) {
            return;
        }
        let health = match *event {
            Event::PingAnswered {
                status: 408 | 503, ..
            }
            | Event::PingFailed { .. } => Health::Down,
            Event::PingAnswered { .. } | Event::DestinationAnswered { .. } => Health::Up,
            Event::DestinationFailed { .. } => {
                // Only pinged destinations may go down on a failed call: pings bring them back.
                let pinged = inner
                    .trunks
                    .values()
                    .any(|t| t.spec.ping_interval.is_some() && t.resolved.contains(&peer));
                if !pinged {
                    return;
                }
                Health::Down
            }
        };
        let old = inner.health.insert(peer, health);
        if old != Some(health) {
            tracing::info!(peer = %peer.addr, proto = %peer.transport, state = ?health, "destination state");
        }
    }

    /// Destinations to ping with their interval.
    pub fn ping_targets(&self) -> Vec<(Peer, Duration)> {
        let inner = self.lock();
        let mut out: Vec<(Peer, Duration)> = Vec::new();
        for trunk in inner.trunks.values() {
            let Some(interval) = trunk.spec.ping_interval else {
                continue;
            };
            for peer in &trunk.resolved {
                if !out.iter().any(|(p, _)| p == peer) {
                    out.push((*peer, interval));
                }
            }
        }
        out
    }

    /// Trunks with names to resolve: name, destinations and transport.
    pub fn to_resolve(&self) -> Vec<(String, Vec<DestinationSpec>, Transport)> {
        self.lock()
            .trunks
            .iter()
            .filter(|(_, t)| {
                t.spec
                    .destinations
                    .iter()
                    .any(|d| !matches!(d, DestinationSpec::Addr(_)))
            })
            .map(|(n, t)| (n.clone(), t.spec.destinations.clone(), t.spec.transport))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::FailReason;

    fn peer(port: u16) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: SocketAddr::from(([192, 0, 2, 1], port)),
        }
    }

    fn table(ping: Option<Duration>) -> TrunkTable {
        let t = TrunkTable::new();
        t.set(
            "hq",
            TrunkSpec {
                destinations: vec![
                    DestinationSpec::Addr(peer(1).addr),
                    DestinationSpec::Addr(peer(2).addr),
                ],
                transport: Transport::Udp,
                ping_interval: ping,
            },
        );
        t
    }

    #[test]
    fn down_destinations_are_skipped_until_a_ping_answers() {
        let t = table(Some(Duration::from_secs(30)));
        assert_eq!(t.destinations("hq"), [peer(1), peer(2)]);
        t.observe(&Event::PingFailed { peer: peer(1) });
        assert_eq!(t.destinations("hq"), [peer(2)]);
        t.observe(&Event::PingAnswered {
            peer: peer(2),
            status: 503,
        });
        assert!(
            t.destinations("hq").is_empty(),
            "every destination down: the proxy answers 503"
        );
        t.observe(&Event::PingAnswered {
            peer: peer(1),
            status: 404,
        });
        assert_eq!(
            t.destinations("hq"),
            [peer(1)],
            "any other answer means up (CUCM)"
        );
        t.observe(&Event::DestinationFailed {
            peer: peer(1),
            reason: FailReason::Transport,
        });
        assert_eq!(t.health(peer(1)), Health::Down);
        assert_eq!(t.ping_targets().len(), 2);
    }

    #[test]
    fn without_pings_failed_calls_do_not_mark_down() {
        let t = table(None);
        t.observe(&Event::DestinationFailed {
            peer: peer(1),
            reason: FailReason::Timeout,
        });
        assert_eq!(t.destinations("hq"), [peer(1), peer(2)]);
        assert!(t.ping_targets().is_empty());
        assert!(t.destinations("nope").is_empty());
    }

    #[test]
    fn only_trunk_destinations_have_a_health() {
        let t = table(Some(Duration::from_secs(30)));
        t.observe(&Event::DestinationAnswered { peer: peer(9) });
        t.observe(&Event::PingFailed { peer: peer(9) });
        assert_eq!(t.health(peer(9)), Health::Unknown);
        assert_eq!(t.lock().health.len(), 0);
        t.observe(&Event::DestinationAnswered { peer: peer(2) });
        assert_eq!(t.health(peer(2)), Health::Up);
    }

    #[test]
    fn names_wait_for_resolution() {
        let t = TrunkTable::new();
        t.set(
            "srv",
            TrunkSpec {
                destinations: vec![DestinationSpec::Srv("_sip._udp.example.com".into())],
                transport: Transport::Udp,
                ping_interval: None,
            },
        );
        assert!(t.destinations("srv").is_empty());
        assert_eq!(t.to_resolve().len(), 1);
        t.set_resolved("srv", vec![peer(7)]);
        assert_eq!(t.destinations("srv"), [peer(7)]);
        assert_eq!(t.snapshot(), [("srv".to_owned(), peer(7), Health::Unknown)]);
    }
}
