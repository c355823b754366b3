//! Throttling of repeated authentication failures per source address (sans-IO).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::AuthError;

/// Settings of a [`FailureThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that trigger a refusal period.
    pub max_failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long an address is refused once it reached `max_failures`.
    pub backoff: Duration,
    /// The most addresses tracked at once; beyond it the stalest entry is forgotten.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    /// Five failures within a minute block an address for five minutes; 4096 addresses tracked.
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(60),
            backoff: Duration::from_secs(300),
            max_tracked: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Start of the current counting window.
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

/// Counts authentication failures per source address and refuses an address that failed too
/// often, for a backoff period.
///
/// It performs no I/O and reads no clock: every call takes `now`. IPv6 addresses are counted per
/// /64 (one host usually owns a whole /64), and IPv4-mapped IPv6 addresses as IPv4. Memory is
/// bounded by [`ThrottleConfig::max_tracked`].
#[derive(Debug)]
pub struct FailureThrottle {
    config: ThrottleConfig,
    entries: HashMap<IpAddr, Entry>,
}

impl FailureThrottle {
    /// A throttle with the given settings.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Refuses an address that is in its backoff period; call it on accept, before any work.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), AuthError> {
        let key = bucket(addr);
        match self.entries.get(&key).and_then(|e| e.blocked_until) {
            Some(until) if until > now => Err(AuthError::Throttled {
                addr: key,
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt from `addr`. Returns `true` when this failure starts a backoff
    /// period (so the caller can log it once).
    pub fn record_failure(&mut self, addr: IpAddr, now: Instant) -> bool {
        let key = bucket(addr);
        if !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if now.saturating_duration_since(entry.window_start) > self.config.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        let blocked = entry.blocked_until.is_some_and(|until| until > now);
        if entry.failures >= self.config.max_failures && !blocked {
            entry.blocked_until = Some(now + self.config.backoff);
            entry.window_start = now;
            entry.failures = 0;
            return true;
        }
        false
    }

    /// Records a successful authentication: the address's count starts again.
    pub fn record_success(&mut self, addr: IpAddr) {
        self.entries.remove(&bucket(addr));
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Forgets entries whose window and backoff are over.
    pub fn purge(&mut self, now: Instant) {
        let config = self.config;
        self.entries.retain(|_, e| live(e, &config, now));
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.config.max_tracked {
            return;
        }
        self.purge(now);
        while self.entries.len() >= self.config.max_tracked.max(1) {
            // Forget the entry seen longest ago (O(n), only when the table is full of live ones).
            let Some(stalest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.entries.remove(&stalest);
        }
    }
}

fn live(e: &Entry, config: &ThrottleConfig, now: Instant) -> bool {
    e.blocked_until.is_some_and(|until| until > now)
        || now.saturating_duration_since(e.window_start) <= config.window
}

/// The key an address is counted under.
fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            max_failures: 3,
            window: Duration::from_secs(10),
            backoff: Duration::from_secs(60),
            max_tracked: 4,
        }
    }

    #[test]
    fn blocks_after_n_failures_and_releases_after_backoff() {
        let mut t = FailureThrottle::new(cfg());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!t.record_failure(a, t0));
        assert!(!t.record_failure(a, t0 + Duration::from_secs(1)));
        t.check(a, t0 + Duration::from_secs(1)).unwrap();
        assert!(t.record_failure(a, t0 + Duration::from_secs(2)));
        let err = t.check(a, t0 + Duration::from_secs(3)).unwrap_err();
        assert!(
            matches!(err, AuthError::Throttled { retry_after, .. } if retry_after == Duration::from_secs(59))
        );
        assert_eq!(err.code(), "throttled");
        // Another address is unaffected.
        t.check("192.0.2.2".parse().unwrap(), t0).unwrap();
        t.check(a, t0 + Duration::from_secs(63)).unwrap();
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut t = FailureThrottle::new(cfg());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(!t.record_failure(a, t0 + Duration::from_secs(11 * i)));
            assert!(!t.record_failure(a, t0 + Duration::from_secs(11 * i)));
        }
        t.check(a, t0 + Duration::from_secs(200)).unwrap();
        t.record_success(a);
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_and_ipv6_counts_per_64() {
        let mut t = FailureThrottle::new(cfg());
        let t0 = Instant::now();
        for i in 0..100u16 {
            let addr = IpAddr::from([0x2001, 0xdb8, i, 0, 0, 0, 0, 1]);
            t.record_failure(addr, t0);
            assert!(t.tracked() <= 4);
        }
        // Three hosts of one /64 add up.
        let mut t = FailureThrottle::new(cfg());
        for host in 1..=3u16 {
            t.record_failure(IpAddr::from([0x2001, 0xdb8, 1, 1, 0, 0, 0, host]), t0);
        }
        assert!(
            t.check(IpAddr::from([0x2001, 0xdb8, 1, 1, 9, 9, 9, 9]), t0)
                .is_err()
        );
    }
}
