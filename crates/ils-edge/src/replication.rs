//! The replication side of the edge: starts the ILS service from `[ils]`, keeps imported
//! catalogs in the route table (the importing edge routes them itself, by route string), and
//! reports peers and counters to the admin API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use dialplan::{ClusterId, DirectoryUri, LearnedBatch, LearnedChange, LearnedTable, RouteString};
use ils::auth::AuthMode;
use ils::{Service, Setup};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{AuthMethod, Config, IlsSettings};

/// The running replication service.
pub struct Replication {
    service: Service,
    table: Arc<LearnedTable>,
    origin: ClusterId,
    /// Catalog entries now in the table, and the version their next change gets.
    catalogs: Mutex<(BTreeMap<DirectoryUri, RouteString>, u64)>,
}

impl Replication {
    /// Starts ILS: opens the store and fills `table` from it (so learned URIs route at once),
    /// binds the listeners, and advertises `config`'s directory and catalogs.
    pub async fn start(
        config: &Config,
        ils: &IlsSettings,
        table: Arc<LearnedTable>,
    ) -> anyhow::Result<Self> {
        let mut route_strings = vec![ils.route_string.clone()];
        for (_, rows) in &ils.catalogs {
            for r in rows {
                if !route_strings.contains(&r.route_string) {
                    route_strings.push(r.route_string.clone());
                }
            }
        }
        let mut setup = Setup::new(
            config.cluster.id.clone(),
            config.cluster.name.clone(),
            config.cluster.role,
            ils.data_dir.clone(),
        );
        setup.route_strings = route_strings;
        setup.registrar = ils.registrar.clone();
        setup.backup_hubs = ils.backup_hubs.clone();
        setup.auth = match ils.auth {
            AuthMethod::Password => AuthMode::Password,
            AuthMethod::Tls => AuthMode::Tls,
            AuthMethod::TlsPassword => AuthMode::TlsPassword,
        };
        setup.password = ils.password.clone();
        setup.allow_plaintext_password = ils.allow_plaintext_password;
        setup.sync_interval = ils.sync_interval;
        setup.trusted_certificates = ils.trusted_certificates.clone();
        setup.trusted_cas = ils.trusted_cas.clone();
        setup.identity = ils.identity.clone();
        setup.advertise_addrs = ils
            .listen_tls
            .into_iter()
            .chain(ils.listen_password)
            .collect();
        setup.uri_policy = config.cluster.uri_lookup_policy;
        let service = Service::launch(setup, table.clone()).await.context("ILS")?;
        info!(learned = table.len(), "learned URIs loaded from the store");
        if let Some(addr) = ils.listen_tls {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("ILS: cannot bind the TLS listener {addr}"))?;
            service
                .serve_tls(l)
                .with_context(|| format!("ILS: cannot serve on {addr}"))?;
        }
        if let Some(addr) = ils.listen_password {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("ILS: cannot bind the password listener {addr}"))?;
            service
                .serve_password(l)
                .with_context(|| format!("ILS: cannot serve on {addr}"))?;
        }
        let this = Self {
            service,
            table,
            origin: config.cluster.id.clone(),
            catalogs: Mutex::new((BTreeMap::new(), 1)),
        };
        this.advertise(config);
        Ok(this)
    }

    /// Advertises `config`'s directory URIs and catalogs (the whole set: the service pushes the
    /// difference) and puts the catalogs into the route table.
    pub fn advertise(&self, config: &Config) {
        let report = self.service.advertise(config.advertised());
        info!(report = ?report, "directory advertised");
        let Some(ils) = &config.ils else {
            return;
        };
        let wanted: BTreeMap<DirectoryUri, RouteString> = ils
            .catalogs
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| (r.uri.clone(), r.route_string.clone())))
            .collect();
        let mut guard = self
            .catalogs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (held, version) = &mut *guard;
        let mut changes = Vec::new();
        for (uri, rs) in &wanted {
            if held.get(uri) != Some(rs) {
                changes.push(LearnedChange::Upsert {
                    uri: uri.clone(),
                    route_string: rs.clone(),
                    version: *version,
                });
            }
        }
        for uri in held.keys() {
            if !wanted.contains_key(uri) {
                changes.push(LearnedChange::Remove {
                    uri: uri.clone(),
                    version: *version,
                });
            }
        }
        if !changes.is_empty() {
            let report = self.table.apply(LearnedBatch {
                origin: self.origin.clone(),
                changes,
            });
            info!(report = %report, "imported catalogs applied to the route table");
            *version += 1;
        }
        *held = wanted;
    }

    /// The peer vector as JSON rows for the admin API.
    pub fn peers_json(&self) -> serde_json::Value {
        let secs = |d: Option<Duration>| d.map(|d| format!("{:.1}s ago", d.as_secs_f64()));
        self.service
            .peers()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "cluster_id": p.cluster_id.as_str(),
                    "cluster_name": p.cluster_name,
                    "role": p.role.as_str(),
                    "address": p.addresses.join(","),
                    "route_strings": p.route_strings,
                    "state": if p.local { "local".to_owned() } else { format!("{:?}", p.state).to_lowercase() },
                    "linked": p.linked,
                    "hub": p.hub.as_ref().map(ClusterId::as_str),
                    "last_seen": secs(p.last_seen),
                    "last_sync": secs(p.last_sync),
                    "records": p.records,
                    "max_version": p.max_version,
                    "lag": p.pending_records,
                })
            })
            .collect()
    }

    /// Appends Prometheus text.
    pub fn metrics(&self, out: &mut String) {
        use crate::admin::metric;
        let s = self.service.stats();
        let n = &s.node;
        metric(
            out,
            "ils_edge_ils_links",
            "gauge",
            "Replication links open.",
            s.links as f64,
        );
        metric(
            out,
            "ils_edge_ils_bytes_in_total",
            "counter",
            "Bytes read from replication links.",
            s.bytes_in as f64,
        );
        metric(
            out,
            "ils_edge_ils_bytes_out_total",
            "counter",
            "Bytes written to replication links.",
            s.bytes_out as f64,
        );
        metric(
            out,
            "ils_edge_ils_records_sent_total",
            "counter",
            "Records sent.",
            n.records_sent as f64,
        );
        metric(
            out,
            "ils_edge_ils_records_received_total",
            "counter",
            "Records received.",
            n.records_received as f64,
        );
        metric(
            out,
            "ils_edge_ils_records_applied_total",
            "counter",
            "Records that changed our state.",
            n.records_applied as f64,
        );
        metric(
            out,
            "ils_edge_ils_records_invalid_total",
            "counter",
            "Records dropped as invalid.",
            n.records_invalid as f64,
        );
        metric(
            out,
            "ils_edge_ils_anti_entropy_passes_total",
            "counter",
            "Anti-entropy passes.",
            n.anti_entropy_passes as f64,
        );
        metric(
            out,
            "ils_edge_ils_records_repaired_total",
            "counter",
            "Records repaired by anti-entropy.",
            n.records_repaired as f64,
        );
        metric(
            out,
            "ils_edge_ils_conflicts_total",
            "counter",
            "URIs claimed by two clusters.",
            n.table_conflicts as f64,
        );
        metric(
            out,
            "ils_edge_ils_store_commits_total",
            "counter",
            "Store transactions.",
            s.commits as f64,
        );
        let _ = writeln!(
            out,
            "# HELP ils_edge_ils_auth_failures_total Authentication refusals by this edge, by reason."
        );
        let _ = writeln!(out, "# TYPE ils_edge_ils_auth_failures_total counter");
        for (code, count) in &s.auth_failures {
            let _ = writeln!(
                out,
                "ils_edge_ils_auth_failures_total{{reason=\"{code}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ils_edge_ils_refusals_total Links refused by this edge, by reason."
        );
        let _ = writeln!(out, "# TYPE ils_edge_ils_refusals_total counter");
        for (code, count) in &n.refused_by_us {
            let _ = writeln!(
                out,
                "ils_edge_ils_refusals_total{{reason=\"{code}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ils_edge_ils_peer_lag_records Records a peer has not acknowledged yet."
        );
        let _ = writeln!(out, "# TYPE ils_edge_ils_peer_lag_records gauge");
        let _ = writeln!(
            out,
            "# HELP ils_edge_ils_peer_last_sync_seconds Seconds since the last completed sync with a peer."
        );
        let _ = writeln!(out, "# TYPE ils_edge_ils_peer_last_sync_seconds gauge");
        for p in self.service.peers().iter().filter(|p| !p.local) {
            let _ = writeln!(
                out,
                "ils_edge_ils_peer_lag_records{{cluster=\"{}\"}} {}",
                p.cluster_id, p.pending_records
            );
            if let Some(d) = p.last_sync {
                let _ = writeln!(
                    out,
                    "ils_edge_ils_peer_last_sync_seconds{{cluster=\"{}\"}} {}",
                    p.cluster_id,
                    d.as_secs_f64()
                );
            }
        }
    }

    /// Stops the service, letting links close within `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.service.shutdown(grace).await;
    }
}
