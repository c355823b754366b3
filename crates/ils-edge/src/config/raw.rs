//! The configuration file as written: serde structures that mirror the TOML, with defaults.
//!
//! Every field's doc comment is the reference for that key. Unknown keys are refused
//! (`deny_unknown_fields`), so a misspelt key is an error rather than a silent default.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// This cluster's identity.
    pub(crate) cluster: Cluster,
    /// SIP listeners and timers.
    #[serde(default)]
    pub(crate) sip: Sip,
    /// The replication network. Absent: the edge runs standalone with no ILS.
    #[serde(default)]
    pub(crate) ils: Option<Ils>,
    /// The admin HTTP API.
    #[serde(default)]
    pub(crate) admin: Option<Admin>,
    /// Partitions and global dial plan settings.
    #[serde(default)]
    pub(crate) dialplan: Dialplan,
    /// Calling search spaces.
    #[serde(default)]
    pub(crate) css: Vec<Css>,
    /// SIP trunks.
    #[serde(default)]
    pub(crate) trunk: Vec<Trunk>,
    /// SIP route patterns (domain or IP).
    #[serde(default)]
    pub(crate) sip_route_pattern: Vec<Pattern>,
    /// Numeric route patterns (directory numbers and dialled digits).
    #[serde(default)]
    pub(crate) route_pattern: Vec<Pattern>,
    /// Directory URIs written inline.
    #[serde(default)]
    pub(crate) directory_uri: Vec<DirectoryUri>,
    /// Directory files (CSV: uri, partition, directory number, advertise).
    #[serde(default)]
    pub(crate) directory_file: Vec<DirectoryFile>,
}

/// `[cluster]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cluster {
    /// Unique cluster ID: 1-50 characters of `A-Z a-z 0-9 . -`; not `StandAloneCluster` for a
    /// hub or spoke.
    pub(crate) id: String,
    /// The cluster name (its publisher FQDN): the name TLS peers must present.
    pub(crate) name: String,
    /// `hub`, `spoke` or `standalone`.
    #[serde(default = "default_role")]
    pub(crate) role: String,
    /// `case-sensitive` (CUCM's default) or `case-insensitive` user parts.
    #[serde(default = "default_policy")]
    pub(crate) uri_lookup_policy: String,
}

/// `[sip]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sip {
    /// Listeners as `udp://ADDR:PORT`, `tcp://ADDR:PORT` or `tls://ADDR:PORT`.
    #[serde(default = "default_sip_listen")]
    pub(crate) listen: Vec<String>,
    /// TLS certificate (PEM) for the `tls://` listener. Absent: the edge creates a
    /// self-signed one for its cluster name in `data_dir` on first start.
    #[serde(default)]
    pub(crate) tls_certificate: Option<String>,
    /// TLS private key (PEM) for `tls_certificate`.
    #[serde(default)]
    pub(crate) tls_private_key: Option<String>,
    /// CA certificates (PEM files) that trunk destinations reached over TLS must chain to.
    #[serde(default)]
    pub(crate) trusted_cas: Vec<String>,
    /// How long to wait for any response to a forwarded INVITE before failing over to the
    /// trunk's next destination.
    #[serde(default = "default_invite_timeout")]
    pub(crate) invite_timeout: String,
    /// RFC 3261 T1 (round-trip estimate).
    #[serde(default = "default_t1")]
    pub(crate) t1: String,
    /// Grace period for in-flight transactions at shutdown.
    #[serde(default = "default_grace")]
    pub(crate) shutdown_grace: String,
    /// UDP worker sockets per listener (0: one per core).
    #[serde(default)]
    pub(crate) udp_workers: usize,
}

impl Default for Sip {
    fn default() -> Self {
        Self {
            listen: default_sip_listen(),
            tls_certificate: None,
            tls_private_key: None,
            trusted_cas: Vec::new(),
            invite_timeout: default_invite_timeout(),
            t1: default_t1(),
            shutdown_grace: default_grace(),
            udp_workers: 0,
        }
    }
}

/// `[ils]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ils {
    /// The route string this cluster advertises for its directory URIs.
    pub(crate) route_string: String,
    /// The registration server: for a spoke its hub, for a later hub any hub, for the first
    /// hub none. `HOST:PORT`.
    #[serde(default)]
    pub(crate) registrar: Option<String>,
    /// A spoke's backup hubs, tried in order when its hub is unreachable.
    #[serde(default)]
    pub(crate) backup_hubs: Vec<String>,
    /// The TLS listener (CUCM: port 7501).
    #[serde(default)]
    pub(crate) listen_tls: Option<String>,
    /// The password-only listener (CUCM: port 7502).
    #[serde(default)]
    pub(crate) listen_password: Option<String>,
    /// `password`, `tls` or `tls-password`.
    #[serde(default = "default_auth")]
    pub(crate) auth: String,
    /// The ILS network password (every cluster uses the same one).
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Accept the password over plain TCP. Off: password links run inside TLS.
    #[serde(default)]
    pub(crate) allow_plaintext_password: bool,
    /// How often the anti-entropy pass compares digests with each peer.
    #[serde(default = "default_sync_interval")]
    pub(crate) sync_interval: String,
    /// The most learned URIs kept (CUCM: default 100,000, at most 1,000,000).
    #[serde(default = "default_cap")]
    pub(crate) learned_cap: usize,
    /// Which cluster wins a URI learned from two: `first-learned` (CUCM's behaviour),
    /// `last-learned` or `lowest-cluster-id`.
    #[serde(default = "default_duplicate")]
    pub(crate) duplicate_policy: String,
    /// Where learned URIs, the peer vector and the TLS identity are kept, relative to this file.
    #[serde(default = "default_data_dir")]
    pub(crate) data_dir: String,
    /// Pinned peer certificates (PEM files): the seed's cross-import.
    #[serde(default)]
    pub(crate) trusted_certificates: Vec<String>,
    /// Trusted CA certificates (PEM files).
    #[serde(default)]
    pub(crate) trusted_cas: Vec<String>,
    /// Our certificate (PEM), when not the self-signed one made on first start.
    #[serde(default)]
    pub(crate) certificate: Option<String>,
    /// The private key for `certificate`.
    #[serde(default)]
    pub(crate) private_key: Option<String>,
    /// Imported catalogs advertised like local URIs.
    #[serde(default)]
    pub(crate) catalog: Vec<Catalog>,
}

/// `[[ils.catalog]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Catalog {
    /// The catalog's name.
    pub(crate) name: String,
    /// CSV file: uri and, optionally per row, a route string.
    pub(crate) file: String,
    /// The route string for rows that name none.
    #[serde(default)]
    pub(crate) route_string: Option<String>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admin {
    /// The admin HTTP API address (loopback).
    pub(crate) listen: String,
}

/// `[dialplan]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dialplan {
    /// Partition names.
    #[serde(default)]
    pub(crate) partitions: Vec<String>,
    /// The CSS for requests from no configured trunk. Absent: they get `403`.
    #[serde(default)]
    pub(crate) default_inbound_css: Option<String>,
}

/// `[[css]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Css {
    /// The CSS name.
    pub(crate) name: String,
    /// Its partitions, searched in order.
    pub(crate) partitions: Vec<String>,
}

/// `[[trunk]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trunk {
    /// The trunk name.
    pub(crate) name: String,
    /// Up to 16 destinations, `HOST:PORT` or a DNS SRV name (`_sip._udp.example.com`), tried in
    /// order.
    pub(crate) destinations: Vec<String>,
    /// `udp`, `tcp` or `tls`.
    #[serde(default = "default_transport")]
    pub(crate) transport: String,
    /// Source addresses (hosts or CIDR) calls are accepted from.
    #[serde(default)]
    pub(crate) accepts: Vec<String>,
    /// The CSS of calls arriving over this trunk.
    pub(crate) inbound_css: String,
    /// `always-uri`, `digits-star-plus` (default) or `digits-abcd-star-plus`.
    #[serde(default = "default_dial_string")]
    pub(crate) dial_string: String,
    /// Add `X-cisco-dest-route-string` to learned-URI calls sent over this trunk.
    #[serde(default)]
    pub(crate) add_dest_route_string: bool,
    /// Route on `X-cisco-dest-route-string` when it arrives over this trunk.
    #[serde(default)]
    pub(crate) route_on_dest_route_string: bool,
    /// Send OPTIONS pings to mark destinations up or down.
    #[serde(default = "default_true")]
    pub(crate) options_ping: bool,
    /// Interval between OPTIONS pings to a destination.
    #[serde(default = "default_ping_interval")]
    pub(crate) options_ping_interval: String,
    /// Unanswered pings (or 408/503 answers) before a destination is marked down.
    #[serde(default = "default_down_after")]
    pub(crate) options_ping_down_after: u32,
}

/// `[[sip_route_pattern]]` and `[[route_pattern]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pattern {
    /// The pattern.
    pub(crate) pattern: String,
    /// Its partition.
    pub(crate) partition: String,
    /// The trunk calls matching it go to.
    #[serde(default)]
    pub(crate) trunk: Option<String>,
    /// Block matching calls with this SIP status instead (e.g. 403).
    #[serde(default)]
    pub(crate) block: Option<u16>,
}

/// `[[directory_uri]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryUri {
    /// `user@host`.
    pub(crate) uri: String,
    /// Its partition.
    #[serde(default = "default_partition")]
    pub(crate) partition: String,
    /// The primary extension the URI maps to.
    pub(crate) directory_number: String,
    /// Advertise it through ILS.
    #[serde(default = "default_true")]
    pub(crate) advertise: bool,
}

/// `[[directory_file]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryFile {
    /// CSV path, relative to this file.
    pub(crate) path: String,
    /// The partition for rows that name none.
    #[serde(default = "default_partition")]
    pub(crate) partition: String,
}

fn default_role() -> String {
    "standalone".into()
}
fn default_policy() -> String {
    "case-sensitive".into()
}
fn default_sip_listen() -> Vec<String> {
    vec!["udp://127.0.0.1:5060".into(), "tcp://127.0.0.1:5060".into()]
}
fn default_invite_timeout() -> String {
    "1s".into()
}
fn default_t1() -> String {
    "500ms".into()
}
fn default_grace() -> String {
    "5s".into()
}
fn default_auth() -> String {
    "tls-password".into()
}
fn default_sync_interval() -> String {
    "60s".into()
}
fn default_cap() -> usize {
    100_000
}
fn default_duplicate() -> String {
    "first-learned".into()
}
fn default_data_dir() -> String {
    "var".into()
}
fn default_transport() -> String {
    "udp".into()
}
fn default_dial_string() -> String {
    "digits-star-plus".into()
}
fn default_true() -> bool {
    true
}
fn default_ping_interval() -> String {
    "5s".into()
}
fn default_down_after() -> u32 {
    2
}
pub(crate) fn default_partition() -> String {
    "Directory URI".into()
}
