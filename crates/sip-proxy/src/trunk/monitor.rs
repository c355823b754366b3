//! The trunk monitor task: feeds proxy events into the [`TrunkTable`], sends OPTIONS pings at
//! each trunk's interval, and re-resolves destination names (DNS SRV, A/AAAA).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{DestinationSpec, SrvTarget, TrunkTable, order_srv};
use crate::proxy::{Event, Route};
use crate::transaction::{Peer, Transport};
use crate::transport::ProxyHandle;

/// Monitor settings.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// How often names are resolved again.
    pub resolve_interval: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            resolve_interval: Duration::from_secs(60),
        }
    }
}

/// Resolves trunk destination names.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

/// Why the system resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct DnsError(String);

impl Dns {
    /// A resolver using the system configuration (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, DnsError> {
        let builder = TokioResolver::builder_tokio().map_err(|e| DnsError(e.to_string()))?;
        let resolver = builder.build().map_err(|e| DnsError(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// Resolves destinations in order: SRV names by priority and weight, host names to every
    /// address (IPv4 first). Names that fail to resolve are left out.
    pub async fn resolve(
        &self,
        destinations: &[DestinationSpec],
        transport: Transport,
    ) -> Vec<Peer> {
        let named = self.resolve_named(destinations, transport).await;
        named.into_iter().map(|(peer, _)| peer).collect()
    }

    /// Like [`Dns::resolve`], with the name a TLS certificate must carry for each destination:
    /// the host name, or the domain of an SRV name (RFC 5922 §4).
    pub async fn resolve_named(
        &self,
        destinations: &[DestinationSpec],
        transport: Transport,
    ) -> Vec<(Peer, Option<String>)> {
        let mut out = Vec::new();
        for spec in destinations {
            match spec {
                DestinationSpec::Addr(addr) => out.push((
                    Peer {
                        transport,
                        addr: *addr,
                    },
                    None,
                )),
                DestinationSpec::HostPort { host, port } => {
                    let peers = self.addresses(host, *port, transport).await;
                    out.extend(peers.into_iter().map(|p| (p, Some(host.clone()))));
                }
                DestinationSpec::Srv(name) => {
                    let records = self.srv(name).await;
                    let domain = srv_domain(name);
                    for record in order_srv(records, random) {
                        let peers = self.addresses(&record.target, record.port, transport).await;
                        out.extend(peers.into_iter().map(|p| (p, Some(domain.clone()))));
                    }
                }
            }
        }
        out
    }

    async fn srv(&self, name: &str) -> Vec<SrvTarget> {
        match self.resolver.srv_lookup(name).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(SrvTarget {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_utf8(),
                    }),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "SRV lookup failed");
                Vec::new()
            }
        }
    }

    async fn addresses(&self, host: &str, port: u16, transport: Transport) -> Vec<Peer> {
        match self.resolver.lookup_ip(host).await {
            Ok(ips) => {
                let mut addrs: Vec<SocketAddr> =
                    ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                addrs.sort_by_key(SocketAddr::is_ipv6);
                addrs
                    .into_iter()
                    .map(|addr| Peer { transport, addr })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "address lookup failed");
                Vec::new()
            }
        }
    }
}

/// Runs until `stop`: applies events to `table`, pings, and re-resolves names with `dns`.
pub async fn run<R: Route + Send + 'static>(
    handle: ProxyHandle<R>,
    table: Arc<TrunkTable>,
    mut events: mpsc::Receiver<Event>,
    dns: Option<Dns>,
    config: MonitorConfig,
    stop: CancellationToken,
) {
    let mut next_ping: HashMap<Peer, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut next_resolve = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => table.observe(&event),
                None => return,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(dns) = &dns && now >= next_resolve {
                    next_resolve = now + config.resolve_interval;
                    for (name, specs, transport) in table.to_resolve() {
                        let resolved = dns.resolve_named(&specs, transport).await;
                        for (peer, tls_name) in &resolved {
                            if let (Transport::Tls, Some(tls_name)) = (transport, tls_name) {
                                handle.set_tls_name(peer.addr, tls_name);
                            }
                        }
                        table.set_resolved(&name, resolved.into_iter().map(|(p, _)| p).collect());
                    }
                }
                let targets = table.ping_targets();
                next_ping.retain(|p, _| targets.iter().any(|(t, _)| t == p));
                for (peer, interval) in targets {
                    let due = next_ping.entry(peer).or_insert(now);
                    if *due <= now {
                        *due = now + interval;
                        handle.ping(peer);
                    }
                }
            }
        }
    }
}

/// The SIP domain of an SRV name: `_sips._tcp.example.com` gives `example.com`.
fn srv_domain(name: &str) -> String {
    let mut rest = name.trim_end_matches('.');
    while let Some(stripped) = rest.strip_prefix('_') {
        rest = stripped.split_once('.').map_or("", |(_, r)| r);
    }
    rest.to_owned()
}

/// A cheap random draw in `0..=n` for SRV weights; it need not be cryptographic.
fn random(n: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::RandomState::default().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let r = h.finish();
    u32::try_from(r % (u64::from(n) + 1)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::srv_domain;

    #[test]
    fn srv_domain_drops_service_and_protocol_labels() {
        assert_eq!(srv_domain("_sips._tcp.example.com."), "example.com");
        assert_eq!(srv_domain("_sip._udp.hq.example.net"), "hq.example.net");
        assert_eq!(srv_domain("plain.example.org"), "plain.example.org");
    }
}
