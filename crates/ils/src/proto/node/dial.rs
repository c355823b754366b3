//! Whom to dial and when: a spoke keeps one link to its registrar or, failing that, to its
//! backup hubs in order; a hub dials its registrar once, then every hub the peer vector
//! names. Failed attempts back off exponentially, per address.
//!
//! A peer that refuses our credentials (`BAD_AUTH`, or a refusal of the TLS layer) is retried
//! on a schedule of its own, [`auth_backoff`]: soon after a first refusal (a hub that just
//! restarted, a password fixed by the operator), then quickly slower, never more often than the
//! hub's failure throttle tolerates, so a misconfigured peer does not get itself locked out.

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
    /// Spoke: authentication refusals in a row (any hub of the list).
    auth_refusals: u32,
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
    /// Authentication refusals in a row from this address.
    auth_refusals: u32,
    /// The attempt under way was refused for authentication: its end waits [`auth_backoff`].
    auth_refused: bool,
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
            auth_refusals: 0,
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
            t.auth_refusals = 0;
            t.auth_refused = false;
        }
        self.cycle_failures = 0;
        self.auth_refusals = 0;
        if self.registrar.as_deref() == Some(addr) {
            self.registrar_cluster = Some(cluster.clone());
        }
    }

    /// The link dialed to `addr` was refused (by either end): a refusal for authentication is
    /// retried on the [`auth_backoff`] schedule, another permanent reason backs off to the
    /// maximum at once.
    pub(super) fn refused(
        &mut self,
        _now: Instant,
        addr: &str,
        reason: RefuseReason,
        _c: &NodeConfig,
    ) {
        if reason == RefuseReason::BadAuth {
            self.auth_refused(addr);
            return;
        }
        let permanent = matches!(
            reason,
            RefuseReason::DuplicateClusterId
                | RefuseReason::VersionMismatch
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

    /// The attempt to `addr` failed authentication (a `BAD_AUTH` refusal, or a refusal of the
    /// TLS layer): when it ends, the next attempt waits [`auth_backoff`]. Counted once per
    /// attempt.
    pub(super) fn auth_refused(&mut self, addr: &str) {
        let t = self.targets.entry(addr.to_owned()).or_default();
        if !t.auth_refused {
            t.auth_refused = true;
            t.auth_refusals = t.auth_refusals.saturating_add(1);
            self.auth_refusals = self.auth_refusals.saturating_add(1);
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
        let auth_refused = std::mem::take(&mut t.auth_refused);
        if self.role != Role::Hub {
            // A spoke's retries are timed by `spoke_retry` alone.
        } else if was_up {
            t.failures = 0;
            t.retry = Some(now + config.reconnect_min);
        } else {
            t.failures += 1;
            let mut delay = backoff(t.failures, config);
            if auth_refused {
                delay = delay.max(auth_backoff(t.auth_refusals, config));
            }
            t.retry = Some(now + delay);
        }
        if self.role != Role::Spoke || self.spoke_targets.is_empty() {
            return;
        }
        // A spoke moves on to the next hub in its list at once; after a whole round of
        // failures it waits before starting over.
        self.current = (self.current + 1) % self.spoke_targets.len();
        if self.current == 0 && !was_up {
            self.cycle_failures += 1;
            let mut delay = backoff(self.cycle_failures, config);
            if self.auth_refusals > 0 {
                delay = delay.max(auth_backoff(self.auth_refusals, config));
            }
            self.spoke_retry = Some(now + delay);
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

/// The first retry after an authentication refusal.
const AUTH_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Growth of the authentication retry delay per refusal in a row.
const AUTH_RETRY_GROWTH: u32 = 6;

/// The delay after the `refusals`-th authentication refusal in a row: 1 s, 6 s, then
/// `reconnect_max` (30 s by default).
///
/// Fast enough that a peer refused while its hub restarted, or whose password the operator
/// just fixed, joins within seconds; slow enough that any five attempts in a row span more than
/// a minute (1 + 6 + 30 + 30 s), so a misconfigured peer stays below the hubs' failure throttle
/// (five failures within a minute; [`ThrottleConfig`](crate::auth::ThrottleConfig)) and is never
/// locked out by its own retries.
pub(super) fn auth_backoff(refusals: u32, config: &NodeConfig) -> Duration {
    let exp = refusals.saturating_sub(1).min(8);
    AUTH_RETRY_FIRST
        .saturating_mul(AUTH_RETRY_GROWTH.saturating_pow(exp))
        .min(config.reconnect_max)
}

/// Failures counted for a permanent refusal: enough to reach the longest delay.
const PERMANENT_FAILURES: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ThrottleConfig;

    fn config(role: Role) -> NodeConfig {
        let mut c = NodeConfig::new(LocalIdentity {
            cluster_id: ClusterId::new("BR").expect("id"),
            cluster_name: "br.example.com".into(),
            role,
            route_strings: Vec::new(),
            addresses: vec!["br:7501".into()],
            instance: 1,
        });
        c.registrar = Some("hq:7501".into());
        c
    }

    /// Dials until `n` authentication refusals in a row; returns the attempts' times.
    fn refused_attempts(role: Role, n: usize) -> Vec<Duration> {
        let c = config(role);
        let start = Instant::now();
        let mut d = Dialer::new(&c, start);
        let peers = PeerTable::new(&c.identity);
        let mut now = start;
        let mut times = Vec::new();
        while times.len() < n {
            let due = d.due(now, &peers, &HashSet::new(), false, &c.identity);
            if due.is_empty() {
                now = d.next_attempt(false).expect("a retry is planned");
                continue;
            }
            assert_eq!(due, ["hq:7501"]);
            times.push(now - start);
            d.refused(now, "hq:7501", RefuseReason::BadAuth, &c);
            d.closed(now, "hq:7501", false, &c);
        }
        times
    }

    #[test]
    fn an_authentication_refusal_is_retried_soon_then_slower_up_to_the_maximum() {
        for role in [Role::Spoke, Role::Hub] {
            let t = refused_attempts(role, 6);
            let secs: Vec<u64> = t.iter().map(Duration::as_secs).collect();
            assert_eq!(secs, [0, 1, 7, 37, 67, 97], "{role:?}");
        }
    }

    #[test]
    fn authentication_retries_stay_below_the_hubs_failure_throttle() {
        let throttle = ThrottleConfig::default();
        let k = throttle.max_failures as usize;
        for role in [Role::Spoke, Role::Hub] {
            let t = refused_attempts(role, 20);
            for w in t.windows(k) {
                assert!(
                    w[k - 1] - w[0] > throttle.window,
                    "{role:?}: {k} refusals within {:?}: {w:?}",
                    throttle.window
                );
            }
        }
    }

    #[test]
    fn other_permanent_refusals_still_wait_the_longest_delay() {
        let c = config(Role::Spoke);
        let now = Instant::now();
        let mut d = Dialer::new(&c, now);
        let peers = PeerTable::new(&c.identity);
        assert_eq!(
            d.due(now, &peers, &HashSet::new(), false, &c.identity),
            ["hq:7501"]
        );
        d.refused(now, "hq:7501", RefuseReason::NotAHub, &c);
        d.closed(now, "hq:7501", false, &c);
        assert_eq!(d.next_attempt(false), Some(now + c.reconnect_max));
    }

    #[test]
    fn a_successful_link_resets_the_authentication_schedule() {
        let c = config(Role::Spoke);
        let now = Instant::now();
        let mut d = Dialer::new(&c, now);
        let peers = PeerTable::new(&c.identity);
        let hq = ClusterId::new("HQ").expect("id");
        for _ in 0..3 {
            d.auth_refused("hq:7501");
            d.closed(now, "hq:7501", false, &c);
        }
        d.up("hq:7501", &hq);
        d.closed(now, "hq:7501", true, &c);
        assert_eq!(d.next_attempt(false), Some(now));
        assert!(
            !d.due(now, &peers, &HashSet::new(), false, &c.identity)
                .is_empty()
        );
        d.auth_refused("hq:7501");
        d.closed(now, "hq:7501", false, &c);
        assert_eq!(d.next_attempt(false), Some(now + AUTH_RETRY_FIRST));
    }
}
