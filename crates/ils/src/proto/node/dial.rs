//! Whom to dial and when: a spoke keeps one link to its registrar or, failing that, to its
//! backup hubs in order; a hub dials its registrar once, then every hub the peer vector
//! names. Failed attempts back off exponentially, per address.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use dialplan::{ClusterId, Role};

use super::NodeConfig;
use super::peers::PeerTable;
use crate::proto::handshake::LocalIdentity;
use crate::proto::wire::RefuseReason;

#[derive(Debug)]
pub(super) struct Dialer {
    role: Role,
    /// A spoke's hubs in order of preference: registrar, then backups.
    spoke_targets: Vec<String>,
    /// The spoke target in use.
    current: usize,
    /// Spoke: full cycles through the list that failed in a row.
    cycle_failures: u32,
    spoke_retry: Option<Instant>,
    registrar: Option<String>,
    registrar_cluster: Option<ClusterId>,
    targets: BTreeMap<String, Target>,
}

#[derive(Debug, Default)]
struct Target {
    dialing: bool,
    failures: u32,
    retry: Option<Instant>,
}

impl Dialer {
    pub(super) fn new(config: &NodeConfig, now: Instant) -> Self {
        let role = config.identity.role;
        let spoke_targets = if role == Role::Spoke {
            config
                .registrar
                .iter()
                .chain(&config.backup_hubs)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Self {
            role,
            spoke_targets,
            current: 0,
            cycle_failures: 0,
            spoke_retry: (role == Role::Spoke).then_some(now),
            registrar: config.registrar.clone(),
            registrar_cluster: None,
            targets: BTreeMap::new(),
        }
    }

    /// The addresses to dial now; each is marked as being dialed.
    pub(super) fn due(
        &mut self,
        now: Instant,
        peers: &PeerTable,
        connected: &HashSet<ClusterId>,
        dialing_or_up: bool,
        me: &LocalIdentity,
    ) -> Vec<String> {
        match self.role {
            Role::Spoke => {
                if dialing_or_up || self.spoke_targets.is_empty() {
                    return Vec::new();
                }
                if self.spoke_retry.is_none_or(|t| now < t) {
                    return Vec::new();
                }
                self.spoke_retry = None;
                let addr = self.spoke_targets[self.current % self.spoke_targets.len()].clone();
                self.targets.entry(addr.clone()).or_default().dialing = true;
                vec![addr]
            }
            Role::Hub => {
                let mut wanted: Vec<String> = Vec::new();
                let registrar_linked = self
                    .registrar_cluster
                    .as_ref()
                    .is_some_and(|c| connected.contains(c));
                for (id, addrs) in peers.hubs() {
                    if *id == me.cluster_id || connected.contains(id) {
                        continue;
                    }
                    if let Some(a) = addrs.first() {
                        wanted.push(a.clone());
                    } else if self.registrar_cluster.as_ref() == Some(id) {
                        wanted.extend(self.registrar.clone());
                    }
                }
                if self.registrar_cluster.is_none() && !registrar_linked {
                    wanted.extend(self.registrar.clone());
                }
                let mut out = Vec::new();
                for addr in wanted {
                    if me.addresses.contains(&addr) {
                        continue;
                    }
                    let t = self.targets.entry(addr.clone()).or_default();
                    if t.dialing || t.retry.is_some_and(|r| now < r) {
                        continue;
                    }
                    t.dialing = true;
                    t.retry = None;
                    out.push(addr);
                }
                // Targets no longer wanted must not keep waking the node up.
                for t in self.targets.values_mut() {
                    if t.retry.is_some_and(|r| now >= r) {
                        t.retry = None;
                    }
                }
                out
            }
            Role::Standalone => Vec::new(),
        }
    }

    /// When a retry is due.
    pub(super) fn next_attempt(&self, shutting_down: bool) -> Option<Instant> {
        if shutting_down {
            return None;
        }
        let hubs = self
            .targets
            .values()
            .filter(|t| !t.dialing)
            .filter_map(|t| t.retry);
        let spoke = if self.targets.values().any(|t| t.dialing) {
            None
        } else {
            self.spoke_retry
        };
        hubs.chain(spoke).min()
    }

    /// The connection to `addr` is open; the handshake follows.
    pub(super) fn connected(&mut self, addr: &str, _link: super::LinkId) {
        self.targets.entry(addr.to_owned()).or_default().dialing = true;
    }

    /// The handshake over the link dialed to `addr` completed.
    pub(super) fn up(&mut self, addr: &str, cluster: &ClusterId) {
        if let Some(t) = self.targets.get_mut(addr) {
            t.failures = 0;
        }
        self.cycle_failures = 0;
        if self.registrar.as_deref() == Some(addr) {
            self.registrar_cluster = Some(cluster.clone());
        }
    }

    /// The peer at `addr` refused us: a permanent reason backs off to the maximum at once.
    pub(super) fn refused(
        &mut self,
        _now: Instant,
        addr: &str,
        reason: RefuseReason,
        _c: &NodeConfig,
    ) {
        let permanent = matches!(
            reason,
            RefuseReason::DuplicateClusterId
                | RefuseReason::VersionMismatch
                | RefuseReason::BadAuth
                | RefuseReason::NotAHub
                | RefuseReason::RoleNotAllowed
        );
        if permanent {
            if let Some(t) = self.targets.get_mut(addr) {
                t.failures = t.failures.max(PERMANENT_FAILURES);
            }
            self.cycle_failures = self.cycle_failures.max(PERMANENT_FAILURES);
        }
    }

    /// Dialing `addr` failed before a link opened.
    pub(super) fn failed(&mut self, now: Instant, addr: &str, config: &NodeConfig) {
        self.closed(now, addr, false, config);
    }

    /// The link dialed to `addr` ended (`was_up`: after its handshake completed).
    pub(super) fn closed(&mut self, now: Instant, addr: &str, was_up: bool, config: &NodeConfig) {
        let t = self.targets.entry(addr.to_owned()).or_default();
        t.dialing = false;
        if self.role != Role::Hub {
            // A spoke's retries are timed by `spoke_retry` alone.
        } else if was_up {
            t.failures = 0;
            t.retry = Some(now + config.reconnect_min);
        } else {
            t.failures += 1;
            t.retry = Some(now + backoff(t.failures, config));
        }
        if self.role != Role::Spoke || self.spoke_targets.is_empty() {
            return;
        }
        // A spoke moves on to the next hub in its list at once; after a whole round of
        // failures it waits before starting over.
        self.current = (self.current + 1) % self.spoke_targets.len();
        if self.current == 0 && !was_up {
            self.cycle_failures += 1;
            self.spoke_retry = Some(now + backoff(self.cycle_failures, config));
        } else {
            self.spoke_retry = Some(now);
        }
    }
}

fn backoff(failures: u32, config: &NodeConfig) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    config
        .reconnect_min
        .saturating_mul(1 << exp)
        .min(config.reconnect_max)
}

/// Failures counted for a permanent refusal: enough to reach the longest delay.
const PERMANENT_FAILURES: u32 = 16;
