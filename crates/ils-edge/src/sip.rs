//! The SIP side of the edge: binds the configured listeners, builds the proxy over the dial
//! plan ([`EdgeRoute`]) and the trunk table, and runs the trunk monitor (OPTIONS pings, SRV).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dialplan::{DialPlan, Router};
use sip_proxy::proxy::{Config as CoreConfig, LocalAddr};
use sip_proxy::transaction::{Config as TsxConfig, Transport as SipTransport};
use sip_proxy::transport::{DriverConfig, bind_udp};
use sip_proxy::trunk::monitor::{self, Dns, MonitorConfig};
use sip_proxy::trunk::{DestinationSpec, TrunkSpec, TrunkTable};
use sip_proxy::{Core, Proxy, ProxyHandle};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Listener, SipSettings};
use crate::routing::{Counters, EdgeRoute};

/// The running SIP proxy and its trunk monitor.
pub struct SipEdge {
    handle: ProxyHandle<EdgeRoute>,
    trunks: Arc<TrunkTable>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    monitor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SipEdge {
    /// Binds every `[sip]` listener and starts the proxy. `tls` is the server identity for
    /// `tls://` listeners.
    pub async fn start(
        sip: &SipSettings,
        cluster_name: &str,
        router: Arc<Router>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let trunks = Arc::new(TrunkTable::new());
        load_trunks(&trunks, None, &router.plan());
        let counters = Arc::new(Counters::default());
        let local: Vec<LocalAddr> = sip
            .listeners
            .iter()
            .map(|l| LocalAddr {
                transport: transport(l.transport),
                addr: l.addr,
            })
            .collect();
        let core_config = CoreConfig {
            transaction: TsxConfig {
                t1: sip.t1,
                response_timeout: sip.invite_timeout,
                ..TsxConfig::default()
            },
            local,
            aliases: vec![cluster_name.to_owned()],
            ..CoreConfig::default()
        };
        let route = EdgeRoute::new(router, trunks.clone(), counters.clone());
        let (events_tx, events_rx) = mpsc::channel(4096);
        let connector = outbound_tls(&sip.trusted_cas)?;
        let mut proxy = Proxy::new(
            Core::new(core_config, route),
            DriverConfig::default(),
            Some(connector),
            Some(events_tx),
        );
        let workers = if sip.udp_workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            sip.udp_workers
        };
        for Listener { transport, addr } in &sip.listeners {
            match transport {
                dialplan::Transport::Udp => {
                    for socket in bind_udp(*addr, workers)
                        .with_context(|| format!("SIP: cannot bind udp://{addr}"))?
                    {
                        proxy.register_udp(socket)?;
                    }
                }
                dialplan::Transport::Tcp => {
                    let l = TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("SIP: cannot bind tcp://{addr}"))?;
                    proxy.register_tcp(l)?;
                }
                dialplan::Transport::Tls => {
                    let acceptor = tls
                        .clone()
                        .context("SIP: a tls:// listener needs a certificate")?;
                    let l = TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("SIP: cannot bind tls://{addr}"))?;
                    proxy.register_tls(l, acceptor)?;
                }
            }
        }
        let handle = proxy.start().context("SIP: cannot start the proxy")?;
        // One line with every bound address, for scripts and operators (UDP appears once even
        // with several SO_REUSEPORT sockets).
        let mut bound: Vec<String> = Vec::new();
        for (transport, addr) in handle.local_addrs() {
            let entry = format!("{}://{addr}", transport.to_string().to_lowercase());
            if !bound.contains(&entry) {
                bound.push(entry);
            }
        }
        tracing::info!(addrs = %bound.join(" "), "sip listening");
        let stop = CancellationToken::new();
        let dns = match Dns::system() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "SRV and host-name trunk destinations will not resolve");
                None
            }
        };
        let monitor = tokio::spawn(monitor::run(
            handle.clone(),
            trunks.clone(),
            events_rx,
            dns,
            MonitorConfig::default(),
            stop.clone(),
        ));
        Ok(Self {
            handle,
            trunks,
            counters,
            stop,
            monitor: std::sync::Mutex::new(Some(monitor)),
        })
    }

    /// Applies a reloaded dial plan's trunks (`old` is the plan in force until now); calls in
    /// progress keep their destinations.
    pub fn reload(&self, old: &DialPlan, new: &DialPlan) {
        load_trunks(&self.trunks, Some(old), new);
    }

    /// Appends Prometheus text.
    pub fn metrics(&self, out: &mut String) {
        self.counters.metrics(&self.trunks, out);
        crate::admin::metric(
            out,
            "ils_edge_sip_transactions_pending",
            "gauge",
            "Requests in progress.",
            self.handle.pending() as f64,
        );
        let counts = self.handle.transaction_counts();
        {
            use std::fmt::Write as _;
            let _ = writeln!(
                out,
                "# HELP ils_edge_sip_transactions Live transactions, finished ones still absorbing retransmissions included."
            );
            let _ = writeln!(out, "# TYPE ils_edge_sip_transactions gauge");
            for (side, n) in [("client", counts.client), ("server", counts.server)] {
                let _ = writeln!(out, "ils_edge_sip_transactions{{side=\"{side}\"}} {n}");
            }
        }
        crate::admin::metric(
            out,
            "ils_edge_sip_timer_entries",
            "gauge",
            "Queued transaction timer entries, stale ones included.",
            counts.timer_entries as f64,
        );
    }

    /// Stops accepting, lets requests in progress finish within `grace`, then stops.
    pub async fn shutdown(&self, grace: Duration) {
        self.handle.clone().shutdown(grace).await;
        self.stop.cancel();
        let monitor = self
            .monitor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(monitor) = monitor {
            let _ = monitor.await;
        }
    }
}

/// Puts the plan's trunks into the table, removing those of `old` it no longer has.
fn load_trunks(table: &TrunkTable, old: Option<&DialPlan>, plan: &DialPlan) {
    for gone in old.into_iter().flat_map(|o| o.trunks()) {
        if plan.trunk(gone.name.as_str()).is_none() {
            table.remove(gone.name.as_str());
        }
    }
    for t in plan.trunks() {
        let destinations = t
            .destinations
            .iter()
            .map(|d| match d {
                dialplan::Destination::HostPort { host, port } => match host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                {
                    Ok(ip) => DestinationSpec::Addr((ip, *port).into()),
                    Err(_) => DestinationSpec::HostPort {
                        host: host.clone(),
                        port: *port,
                    },
                },
                dialplan::Destination::Srv { name } => DestinationSpec::Srv(name.clone()),
            })
            .collect();
        let spec = TrunkSpec {
            destinations,
            transport: transport(t.transport),
            ping_interval: t.options_ping.enabled.then_some(t.options_ping.interval),
        };
        table.set(t.name.as_str(), spec);
    }
}

fn transport(t: dialplan::Transport) -> SipTransport {
    match t {
        dialplan::Transport::Udp => SipTransport::Udp,
        dialplan::Transport::Tcp => SipTransport::Tcp,
        dialplan::Transport::Tls => SipTransport::Tls,
    }
}

/// Outbound TLS toward trunks: the peer's certificate must chain to one of `[sip]
/// trusted_cas` (no system store is consulted: an edge trusts what its operator names).
fn outbound_tls(cas: &[std::path::PathBuf]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for path in cas {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("{}: cannot read", path.display()))?
        {
            let cert = cert.with_context(|| format!("{}: bad PEM", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: bad CA certificate", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
