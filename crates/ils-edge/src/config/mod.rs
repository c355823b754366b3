//! Configuration: one TOML file per edge, read into raw serde structures (the private `raw`
//! module) and then checked and compiled into typed settings and a [`DialPlan`].
//!
//! Every error names the file, the key and the reason (`hq.toml: trunk[1].inbound_css: no CSS
//! named "from-edg"`), and all errors of a file are reported at once, so an operator fixes a
//! file in one pass. [`Config::from_toml`] takes text and does no file I/O of its own except for
//! the directory and catalog files the text names; [`Config::read`] reads the file.

mod csv_files;
mod duration;
mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialplan::{
    ClusterId, DialPlan, DialPlanBuilder, DialStringInterpretation, DirectoryNumber, DirectoryUri,
    DuplicatePolicy, IpPattern, LocalUri, Name, NumericPattern, OptionsPing, PatternAction, Role,
    RouteString, SipPattern, Transport, TrunkSpec, UriLookupPolicy,
};

pub use csv_files::{CatalogEntry, LearnedRow, read_catalog, read_directory, read_learned};
pub use duration::parse_duration;

/// The folder of the data directory that holds catalogs installed by `ils-edge import-catalog`.
pub const IMPORTED_CATALOGS: &str = "catalogs";

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The key, as a path (`trunk[0].destinations[1]`), or empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A checked configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// This cluster's identity.
    pub cluster: ClusterSettings,
    /// SIP listeners and timers.
    pub sip: SipSettings,
    /// Replication settings; `None` for a standalone edge.
    pub ils: Option<IlsSettings>,
    /// Admin HTTP API address.
    pub admin: Option<SocketAddr>,
    /// The compiled dial plan.
    pub plan: DialPlan,
}

/// `[cluster]`, checked.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Cluster ID.
    pub id: ClusterId,
    /// Cluster name (publisher FQDN).
    pub name: String,
    /// Role in the ILS network.
    pub role: Role,
    /// How URI user parts compare.
    pub uri_lookup_policy: UriLookupPolicy,
}

/// A SIP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Its transport.
    pub transport: Transport,
    /// Its address.
    pub addr: SocketAddr,
}

/// `[sip]`, checked.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// TLS certificate and key files, when given.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
    /// CAs that TLS trunk destinations must chain to.
    pub trusted_cas: Vec<PathBuf>,
    /// Failover timeout for forwarded INVITEs.
    pub invite_timeout: Duration,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// UDP worker sockets per listener (0: one per core).
    pub udp_workers: usize,
}

/// How replication peers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The network password, proven by challenge-response.
    Password,
    /// Mutual TLS.
    Tls,
    /// Mutual TLS, or TLS with the password for CA-signed peers not yet known.
    TlsPassword,
}

/// `[ils]`, checked.
#[derive(Debug, Clone)]
pub struct IlsSettings {
    /// Our route string.
    pub route_string: RouteString,
    /// Registration server.
    pub registrar: Option<String>,
    /// Backup hubs for a spoke.
    pub backup_hubs: Vec<String>,
    /// TLS listener.
    pub listen_tls: Option<SocketAddr>,
    /// Password listener.
    pub listen_password: Option<SocketAddr>,
    /// Authentication method.
    pub auth: AuthMethod,
    /// Network password.
    pub password: Option<String>,
    /// Password over plain TCP allowed.
    pub allow_plaintext_password: bool,
    /// Anti-entropy interval.
    pub sync_interval: Duration,
    /// Learned URI cap.
    pub learned_cap: usize,
    /// Duplicate policy.
    pub duplicate_policy: DuplicatePolicy,
    /// Data directory (absolute, or relative to the working directory).
    pub data_dir: PathBuf,
    /// Pinned peer certificates.
    pub trusted_certificates: Vec<PathBuf>,
    /// Trusted CAs.
    pub trusted_cas: Vec<PathBuf>,
    /// Our certificate and key, when not self-signed.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Imported catalogs, loaded.
    pub catalogs: Vec<(String, Vec<CatalogEntry>)>,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                key: String::new(),
                reason: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks configuration text; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigErrors> {
        let mut errs = Errors {
            file: path.to_owned(),
            list: Vec::new(),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| errs.toml(e))?;
        let raw: raw::File = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let mut errs = Errors {
                file: path.to_owned(),
                list: Vec::new(),
            };
            errs.push(if key == "." { "" } else { &key }, e.into_inner().message());
            ConfigErrors(errs.list)
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let cfg = compile(raw, &base, &mut errs);
        match cfg {
            Some(cfg) if errs.list.is_empty() => Ok(cfg),
            _ => Err(ConfigErrors(errs.list)),
        }
    }

    /// The `(uri, route string)` pairs this edge advertises: directory URIs marked `advertise`
    /// with our route string, then every imported catalog row.
    pub fn advertised(&self) -> Vec<(DirectoryUri, RouteString)> {
        let Some(ils) = &self.ils else {
            return Vec::new();
        };
        let mut out: Vec<_> = self
            .plan
            .local_uris()
            .filter(|u| u.advertise)
            .map(|u| (u.uri.clone(), ils.route_string.clone()))
            .collect();
        for (_, rows) in &ils.catalogs {
            out.extend(rows.iter().map(|r| (r.uri.clone(), r.route_string.clone())));
        }
        out
    }
}

/// Collects errors with the file name.
struct Errors {
    file: PathBuf,
    list: Vec<ConfigError>,
}

impl Errors {
    fn push(&mut self, key: &str, reason: impl fmt::Display) {
        self.list.push(ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            reason: reason.to_string(),
        });
    }

    fn toml(&mut self, e: toml::de::Error) -> ConfigErrors {
        let reason = e.message().to_owned();
        let at = e
            .span()
            .map(|s| format!(" (at byte {})", s.start))
            .unwrap_or_default();
        self.push("", format!("{reason}{at}"));
        ConfigErrors(std::mem::take(&mut self.list))
    }

    /// Runs `f` on the value, recording its error under `key`.
    fn check<T, E: fmt::Display>(&mut self, key: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(key, e);
                None
            }
        }
    }
}

fn compile(raw: raw::File, base: &Path, errs: &mut Errors) -> Option<Config> {
    let role = errs.check("cluster.role", raw.cluster.role.parse::<Role>());
    let policy = errs.check(
        "cluster.uri_lookup_policy",
        raw.cluster.uri_lookup_policy.parse::<UriLookupPolicy>(),
    );
    let id = errs.check(
        "cluster.id",
        ClusterId::for_role(&raw.cluster.id, role.unwrap_or(Role::Standalone)),
    );
    if raw.cluster.name.trim().is_empty() {
        errs.push("cluster.name", "empty cluster name");
    }
    let sip = compile_sip(&raw.sip, base, errs);
    let policy_or_default = policy.unwrap_or_default();
    let ils = match (&raw.ils, role) {
        (Some(ils), _) => compile_ils(ils, role, policy_or_default, base, errs),
        (None, Some(Role::Hub | Role::Spoke)) => {
            errs.push("ils", "a hub or spoke needs an [ils] section");
            None
        }
        (None, _) => None,
    };
    let admin = raw.admin.as_ref().and_then(|a| {
        errs.check(
            "admin.listen",
            a.listen
                .parse::<SocketAddr>()
                .map_err(|e| format!("{e}: {:?}", a.listen)),
        )
    });
    let plan = compile_plan(&raw, policy_or_default, base, errs);
    Some(Config {
        file: errs.file.clone(),
        cluster: ClusterSettings {
            id: id?,
            name: raw.cluster.name.clone(),
            role: role?,
            uri_lookup_policy: policy?,
        },
        sip: sip?,
        ils,
        admin,
        plan: plan?,
    })
}

fn compile_sip(sip: &raw::Sip, base: &Path, errs: &mut Errors) -> Option<SipSettings> {
    let mut listeners = Vec::new();
    for (i, l) in sip.listen.iter().enumerate() {
        let key = format!("sip.listen[{i}]");
        let parsed = l
            .split_once("://")
            .ok_or_else(|| format!("{l:?} is not TRANSPORT://ADDR:PORT"))
            .and_then(|(t, a)| {
                let transport = t.parse::<Transport>().map_err(|e| e.to_string())?;
                let addr = a
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{a:?} is not ADDR:PORT ({e})"))?;
                if addr.ip().is_unspecified() {
                    return Err(format!(
                        "{a:?}: name the address to listen on; it goes into Via and \
                         Record-Route, where a wildcard address cannot be reached"
                    ));
                }
                Ok(Listener { transport, addr })
            });
        if let Some(l) = errs.check(&key, parsed) {
            listeners.push(l);
        }
    }
    let tls_identity = match (&sip.tls_certificate, &sip.tls_private_key) {
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        (None, None) => None,
        _ => {
            errs.push(
                "sip.tls_certificate",
                "tls_certificate and tls_private_key go together",
            );
            None
        }
    };
    let invite_timeout = errs.check("sip.invite_timeout", parse_duration(&sip.invite_timeout));
    let t1 = errs.check("sip.t1", parse_duration(&sip.t1));
    let shutdown_grace = errs.check("sip.shutdown_grace", parse_duration(&sip.shutdown_grace));
    Some(SipSettings {
        listeners,
        tls_identity,
        trusted_cas: sip.trusted_cas.iter().map(|p| base.join(p)).collect(),
        invite_timeout: invite_timeout?,
        t1: t1?,
        shutdown_grace: shutdown_grace?,
        udp_workers: sip.udp_workers,
    })
}

fn compile_ils(
    ils: &raw::Ils,
    role: Option<Role>,
    policy: UriLookupPolicy,
    base: &Path,
    errs: &mut Errors,
) -> Option<IlsSettings> {
    let route_string = errs.check("ils.route_string", RouteString::new(&ils.route_string));
    let auth = match ils.auth.as_str() {
        "password" => Some(AuthMethod::Password),
        "tls" => Some(AuthMethod::Tls),
        "tls-password" => Some(AuthMethod::TlsPassword),
        other => {
            errs.push(
                "ils.auth",
                format!("unknown method {other:?} (expected password, tls or tls-password)"),
            );
            None
        }
    };
    if matches!(auth, Some(AuthMethod::Password | AuthMethod::TlsPassword))
        && ils.password.as_deref().unwrap_or("").is_empty()
    {
        errs.push(
            "ils.password",
            format!("auth = {:?} needs a network password", ils.auth),
        );
    }
    if role == Some(Role::Spoke) && ils.registrar.is_none() {
        errs.push("ils.registrar", "a spoke needs its hub as registrar");
    }
    if role != Some(Role::Spoke) && !ils.backup_hubs.is_empty() {
        errs.push("ils.backup_hubs", "only a spoke has backup hubs");
    }
    let addr = |errs: &mut Errors, key: &str, v: &Option<String>| {
        v.as_ref().and_then(|s| {
            errs.check(
                key,
                s.parse::<SocketAddr>()
                    .map_err(|e| format!("{s:?} is not ADDR:PORT ({e})")),
            )
        })
    };
    let listen_tls = addr(errs, "ils.listen_tls", &ils.listen_tls);
    let listen_password = addr(errs, "ils.listen_password", &ils.listen_password);
    if ils.listen_tls.is_none() && ils.listen_password.is_none() && role == Some(Role::Hub) {
        errs.push(
            "ils.listen_tls",
            "a hub must listen (listen_tls or listen_password)",
        );
    }
    let sync_interval = errs.check("ils.sync_interval", parse_duration(&ils.sync_interval));
    if ils.learned_cap == 0 || ils.learned_cap > 10_000_000 {
        errs.push(
            "ils.learned_cap",
            format!("{} is outside 1..=10000000", ils.learned_cap),
        );
    }
    let duplicate_policy = errs.check(
        "ils.duplicate_policy",
        ils.duplicate_policy.parse::<DuplicatePolicy>(),
    );
    let identity = match (&ils.certificate, &ils.private_key) {
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        (None, None) => None,
        _ => {
            errs.push("ils.certificate", "certificate and private_key go together");
            None
        }
    };
    let mut catalogs = Vec::new();
    for (i, c) in ils.catalog.iter().enumerate() {
        let key = format!("ils.catalog[{i}]");
        let default_rs = c
            .route_string
            .as_ref()
            .and_then(|r| errs.check(&format!("{key}.route_string"), RouteString::new(r)));
        let path = base.join(&c.file);
        if let Some(rows) = errs.check(
            &format!("{key}.file"),
            read_catalog(&path, default_rs.as_ref(), policy),
        ) {
            catalogs.push((c.name.clone(), rows));
        }
    }
    // Catalogs installed with `ils-edge import-catalog` live in the data directory.
    let imported = base.join(&ils.data_dir).join(IMPORTED_CATALOGS);
    if let Ok(dir) = std::fs::read_dir(&imported) {
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(rows) = errs.check(
                &format!("ils.data_dir ({})", path.display()),
                read_catalog(&path, None, policy),
            ) {
                catalogs.push((name, rows));
            }
        }
    }
    Some(IlsSettings {
        route_string: route_string?,
        registrar: ils.registrar.clone(),
        backup_hubs: ils.backup_hubs.clone(),
        listen_tls,
        listen_password,
        auth: auth?,
        password: ils.password.clone(),
        allow_plaintext_password: ils.allow_plaintext_password,
        sync_interval: sync_interval?,
        learned_cap: ils.learned_cap,
        duplicate_policy: duplicate_policy?,
        data_dir: base.join(&ils.data_dir),
        trusted_certificates: ils
            .trusted_certificates
            .iter()
            .map(|p| base.join(p))
            .collect(),
        trusted_cas: ils.trusted_cas.iter().map(|p| base.join(p)).collect(),
        identity,
        catalogs,
    })
}

fn compile_plan(
    raw: &raw::File,
    policy: UriLookupPolicy,
    base: &Path,
    errs: &mut Errors,
) -> Option<DialPlan> {
    let before = errs.list.len();
    let mut b = DialPlanBuilder::new(policy);
    let name = |errs: &mut Errors, key: &str, s: &str| errs.check(key, Name::new(s));

    for (i, p) in raw.dialplan.partitions.iter().enumerate() {
        let key = format!("dialplan.partitions[{i}]");
        if let Some(n) = name(errs, &key, p) {
            errs.check(&key, b.partition(n));
        }
    }
    for (i, css) in raw.css.iter().enumerate() {
        let key = format!("css[{i}]");
        let n = name(errs, &format!("{key}.name"), &css.name);
        let parts: Vec<Name> = css
            .partitions
            .iter()
            .enumerate()
            .filter_map(|(j, p)| name(errs, &format!("{key}.partitions[{j}]"), p))
            .collect();
        if let Some(n) = n {
            errs.check(&key, b.css(n, parts));
        }
    }
    if let Some(css) = &raw.dialplan.default_inbound_css
        && let Some(n) = name(errs, "dialplan.default_inbound_css", css)
    {
        errs.check(
            "dialplan.default_inbound_css",
            b.default_inbound_css(Some(n)),
        );
    }
    for (i, t) in raw.trunk.iter().enumerate() {
        let key = format!("trunk[{i}]");
        if let Some(spec) = compile_trunk(t, &key, errs) {
            errs.check(&key, b.trunk(spec));
        }
    }
    for (list, section, numeric) in [
        (&raw.sip_route_pattern, "sip_route_pattern", false),
        (&raw.route_pattern, "route_pattern", true),
    ] {
        for (i, p) in list.iter().enumerate() {
            let key = format!("{section}[{i}]");
            let partition = name(errs, &format!("{key}.partition"), &p.partition);
            let action = match (&p.trunk, p.block) {
                (Some(t), None) => name(errs, &format!("{key}.trunk"), t)
                    .map(|trunk| PatternAction::Route { trunk }),
                (None, Some(status)) if (400..=699).contains(&status) => {
                    Some(PatternAction::Block { status })
                }
                (None, Some(status)) => {
                    errs.push(
                        &format!("{key}.block"),
                        format!("{status} is not a SIP failure status (400-699)"),
                    );
                    None
                }
                _ => {
                    errs.push(&key, "give exactly one of trunk or block");
                    None
                }
            };
            let pkey = format!("{key}.pattern");
            let (Some(partition), Some(action)) = (partition, action) else {
                continue;
            };
            let added = if numeric {
                errs.check(&pkey, NumericPattern::parse(&p.pattern))
                    .map(|pat| b.numeric_route_pattern(pat, partition, action))
            } else {
                errs.check(&pkey, SipPattern::parse(&p.pattern))
                    .map(|pat| b.sip_route_pattern(pat, partition, action))
            };
            if let Some(r) = added {
                errs.check(&key, r);
            }
        }
    }
    for (i, d) in raw.directory_uri.iter().enumerate() {
        let key = format!("directory_uri[{i}]");
        let uri = errs.check(&format!("{key}.uri"), DirectoryUri::parse(&d.uri, policy));
        let partition = name(errs, &format!("{key}.partition"), &d.partition);
        let dn = errs.check(
            &format!("{key}.directory_number"),
            DirectoryNumber::new(&d.directory_number),
        );
        if let (Some(uri), Some(partition), Some(directory_number)) = (uri, partition, dn) {
            let entry = LocalUri {
                uri,
                partition,
                directory_number,
                advertise: d.advertise,
            };
            errs.check(&key, b.directory_uri(entry));
        }
    }
    for (i, f) in raw.directory_file.iter().enumerate() {
        let key = format!("directory_file[{i}]");
        let Some(default_partition) = name(errs, &format!("{key}.partition"), &f.partition) else {
            continue;
        };
        let path = base.join(&f.path);
        let Some(rows) = errs.check(
            &format!("{key}.path"),
            read_directory(&path, &default_partition, policy),
        ) else {
            continue;
        };
        for (line, entry) in rows {
            if let Err(e) = b.directory_uri(entry) {
                errs.push(
                    &format!("{key}.path"),
                    format!("{}:{line}: {e}", path.display()),
                );
            }
        }
    }
    (errs.list.len() == before).then(|| b.build())
}

fn compile_trunk(t: &raw::Trunk, key: &str, errs: &mut Errors) -> Option<TrunkSpec> {
    let name = errs.check(&format!("{key}.name"), Name::new(&t.name));
    if t.destinations.is_empty() || t.destinations.len() > 16 {
        errs.push(
            &format!("{key}.destinations"),
            format!("{} destinations; a trunk has 1 to 16", t.destinations.len()),
        );
    }
    let destinations: Vec<_> = t
        .destinations
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            errs.check(
                &format!("{key}.destinations[{i}]"),
                dialplan::Destination::parse(d),
            )
        })
        .collect();
    let transport = errs.check(
        &format!("{key}.transport"),
        t.transport.parse::<Transport>(),
    );
    let accepts: Vec<_> = t
        .accepts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| errs.check(&format!("{key}.accepts[{i}]"), IpPattern::parse(a)))
        .collect();
    let inbound_css = errs.check(&format!("{key}.inbound_css"), Name::new(&t.inbound_css));
    let dial_string = errs.check(
        &format!("{key}.dial_string"),
        t.dial_string.parse::<DialStringInterpretation>(),
    );
    let interval = errs.check(
        &format!("{key}.options_ping_interval"),
        parse_duration(&t.options_ping_interval),
    );
    if t.options_ping_down_after == 0 {
        errs.push(
            &format!("{key}.options_ping_down_after"),
            "must be at least 1",
        );
    }
    Some(TrunkSpec {
        name: name?,
        destinations,
        transport: transport?,
        accepts,
        inbound_css: inbound_css?,
        dial_string: dial_string?,
        add_dest_route_string: t.add_dest_route_string,
        route_on_dest_route_string: t.route_on_dest_route_string,
        options_ping: OptionsPing {
            enabled: t.options_ping,
            interval: interval?,
            down_after: t.options_ping_down_after.max(1),
        },
    })
}

#[cfg(test)]
mod tests;
