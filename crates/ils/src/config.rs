//! The replication service's configuration, as the daemon builds it from its config file.
//!
//! Authentication settings (password, TLS identity and trust) are not here: the daemon builds
//! an [`Authenticator`](crate::proto::Authenticator) and a [`Transport`](crate::Transport)
//! from them with the auth module and hands both to [`Service::start`](crate::Service::start).

use std::time::Duration;

use dialplan::{ClusterId, Role, RouteString, UriLookupPolicy};

use crate::proto::{LocalIdentity, NodeConfig, SessionConfig, codec::DEFAULT_MAX_FRAME};

/// What the replication service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our cluster ID (unique in the network).
    pub cluster_id: ClusterId,
    /// Our cluster name: the publisher FQDN, the name TLS certificates must carry.
    pub cluster_name: String,
    /// Hub or spoke (a standalone cluster runs no replication).
    pub role: Role,
    /// The route strings we advertise (the cluster's own, plus imported catalogs').
    pub route_strings: Vec<RouteString>,
    /// Where to join: a spoke's hub, any hub for a later hub, `None` for the first hub.
    pub registrar: Option<String>,
    /// Hubs a spoke fails over to, in order.
    pub backup_hubs: Vec<String>,
    /// Addresses other clusters dial us on (announced in the peer vector; hubs need them).
    pub advertise_addrs: Vec<String>,
    /// Interval of the anti-entropy pass (CUCM's "synchronization interval").
    pub sync_interval: Duration,
    /// How long tombstones of removed URIs are kept.
    pub tombstone_retention: Duration,
    /// Keepalive interval on idle links.
    pub keepalive: Duration,
    /// A link silent for this long is closed.
    pub idle_timeout: Duration,
    /// Handshake (TLS included) must complete within this.
    pub handshake_timeout: Duration,
    /// An outbound connect must complete within this.
    pub connect_timeout: Duration,
    /// Largest frame accepted, in bytes.
    pub max_frame: usize,
    /// Records held from other clusters, at most (a memory bound; the learned table's cap is
    /// applied by the table).
    pub max_learned_records: usize,
    /// Links open at once, at most (inbound and outbound).
    pub max_links: usize,
    /// URI lookup policy used to parse received URIs.
    pub uri_policy: UriLookupPolicy,
}

impl Config {
    /// A configuration with default timers and limits.
    pub fn new(cluster_id: ClusterId, cluster_name: impl Into<String>, role: Role) -> Self {
        Self {
            cluster_id,
            cluster_name: cluster_name.into(),
            role,
            route_strings: Vec::new(),
            registrar: None,
            backup_hubs: Vec::new(),
            advertise_addrs: Vec::new(),
            sync_interval: Duration::from_secs(60),
            tombstone_retention: Duration::from_secs(24 * 3600),
            keepalive: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
            max_learned_records: 2_000_000,
            max_links: 256,
            uri_policy: UriLookupPolicy::default(),
        }
    }

    /// The sans-IO node's configuration; `instance` is a random number per process start.
    pub fn node_config(&self, instance: u64) -> NodeConfig {
        let identity = LocalIdentity {
            cluster_id: self.cluster_id.clone(),
            cluster_name: self.cluster_name.clone(),
            role: self.role,
            route_strings: self.route_strings.clone(),
            addresses: self.advertise_addrs.clone(),
            instance,
        };
        let mut n = NodeConfig::new(identity);
        n.registrar = self.registrar.clone();
        n.backup_hubs = self.backup_hubs.clone();
        n.sync_interval = self.sync_interval;
        n.tombstone_retention = self.tombstone_retention;
        n.session = SessionConfig {
            keepalive: self.keepalive,
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
            ..SessionConfig::default()
        };
        // Keep batches well inside the frame limit: a record is at most ~270 bytes.
        n.batch_bytes = n.batch_bytes.min(self.max_frame / 4);
        n.max_learned_records = self.max_learned_records;
        n.uri_policy = self.uri_policy;
        n
    }
}
