//! The daemon's entry point: [`Service::launch`] builds everything from a [`Setup`] (TLS
//! identity, trust store, authentication, store, restored state) and starts replication.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dialplan::{ClusterId, LearnedTable, Role, RouteString, UriLookupPolicy};
use tokio::net::TcpListener;
use tracing::info;

use crate::auth::{
    AuthError, AuthMode, Authenticator, Identity, LinkAuthenticator, ThrottleConfig, TrustStore,
};
use crate::config::Config;
use crate::driver::{PlainTcp, Service, StartError, TlsTransport, Transport};
use crate::proto::Node;
use crate::store::{RestoreReport, Store, StoreError};

/// The database file in the data directory.
pub const STORE_FILE: &str = "ils.db";

/// Everything the replication service needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Our cluster ID.
    pub cluster_id: ClusterId,
    /// Our cluster name (the name our certificate carries and peers check).
    pub cluster_name: String,
    /// Hub or spoke.
    pub role: Role,
    /// The route strings we advertise: our own, then imported catalogs'.
    pub route_strings: Vec<RouteString>,
    /// Where to join (`HOST:PORT`): a spoke's hub, any hub for a later hub, none for the
    /// first hub.
    pub registrar: Option<String>,
    /// Hubs a spoke fails over to, in order (`HOST:PORT`).
    pub backup_hubs: Vec<String>,
    /// How peers authenticate.
    pub auth: AuthMode,
    /// The network password (every cluster uses the same one).
    pub password: Option<String>,
    /// Password authentication over plain TCP (mode `password` only).
    pub allow_plaintext_password: bool,
    /// Interval of the anti-entropy pass.
    pub sync_interval: Duration,
    /// Where the store (`ils.db`) and the self-signed identity live.
    pub data_dir: PathBuf,
    /// Pinned peer certificates (PEM or DER files): the seed's cross-import.
    pub trusted_certificates: Vec<PathBuf>,
    /// Trusted CA certificates (PEM or DER files).
    pub trusted_cas: Vec<PathBuf>,
    /// Our certificate chain and private key (PEM files); `None`: the self-signed identity
    /// kept in the data directory, made on first start.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Addresses other clusters dial us on (announced in the peer vector; hubs need them).
    pub advertise_addrs: Vec<SocketAddr>,
    /// How received URIs are parsed.
    pub uri_policy: UriLookupPolicy,
    /// Throttling of repeated authentication failures per source address.
    pub throttle: ThrottleConfig,
}

impl Setup {
    /// A setup with defaults: mode `tls-password`, no password, 60 s sync interval, no
    /// registrar, no trust beyond what the password bootstraps.
    pub fn new(
        cluster_id: ClusterId,
        cluster_name: impl Into<String>,
        role: Role,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cluster_id,
            cluster_name: cluster_name.into(),
            role,
            route_strings: Vec::new(),
            registrar: None,
            backup_hubs: Vec::new(),
            auth: AuthMode::TlsPassword,
            password: None,
            allow_plaintext_password: false,
            sync_interval: Duration::from_secs(60),
            data_dir: data_dir.into(),
            trusted_certificates: Vec::new(),
            trusted_cas: Vec::new(),
            identity: None,
            advertise_addrs: Vec::new(),
            uri_policy: UriLookupPolicy::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// Why the service could not launch; each names the file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A standalone cluster takes no part in ILS.
    #[error("cluster {cluster} is standalone: ILS replication does not run")]
    Standalone {
        /// The cluster ID.
        cluster: String,
    },
    /// The data directory could not be created.
    #[error("ILS data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The identity, a trusted certificate or the authentication settings are unusable.
    #[error("ILS authentication: {0}")]
    Auth(#[from] AuthError),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The start-up work was interrupted.
    #[error("ILS start-up interrupted: {0}")]
    Interrupted(String),
}

/// The listeners' transports of a launched service.
pub(crate) struct Listeners {
    tls: Arc<dyn Transport>,
    password: Option<Arc<dyn Transport>>,
}

impl Service {
    /// Launches replication: creates the data directory, loads (or on first start creates)
    /// the TLS identity, builds the trust store (configured pins and CAs, plus the certificates
    /// pinned by earlier password bootstraps), opens the store, fills `table` with the learned
    /// records on disk and restores the node (records, positions, peer vector, own counter),
    /// all before any link opens; then starts dialing. Add listeners with
    /// [`serve_tls`](Self::serve_tls) and [`serve_password`](Self::serve_password), and the
    /// local URIs with [`advertise`](Self::advertise).
    pub async fn launch(setup: Setup, table: Arc<LearnedTable>) -> Result<Self, LaunchError> {
        if setup.role == Role::Standalone {
            return Err(LaunchError::Standalone {
                cluster: setup.cluster_id.to_string(),
            });
        }
        let now = crate::driver::now();
        let throttle = setup.throttle;
        let (node, config, store, listeners, dialer) =
            tokio::task::spawn_blocking(move || prepare(setup, table, now))
                .await
                .map_err(|e| LaunchError::Interrupted(e.to_string()))??;
        let mut service = Self::from_node(node, config, dialer, Some(store), throttle);
        service.listeners = Some(Arc::new(listeners));
        Ok(service)
    }

    /// Accepts links on the TLS listener (CUCM's port 7501), authenticated in the configured
    /// mode. Returns the listener's address.
    pub fn serve_tls(&self, listener: TcpListener) -> Result<SocketAddr, StartError> {
        let t = self
            .listeners
            .as_ref()
            .map_or_else(|| self.transport(), |l| l.tls.clone());
        self.serve_with(listener, t)
    }

    /// Accepts links on the password listener (CUCM's port 7502): authenticated by the
    /// network password alone, inside TLS unless `allow_plaintext_password`. Needs a password.
    pub fn serve_password(&self, listener: TcpListener) -> Result<SocketAddr, StartError> {
        let t = self
            .listeners
            .as_ref()
            .and_then(|l| l.password.clone())
            .ok_or(StartError::NoPassword)?;
        self.serve_with(listener, t)
    }
}

type Prepared = (Node, Config, Store, Listeners, Arc<dyn Transport>);

fn prepare(
    setup: Setup,
    table: Arc<LearnedTable>,
    now: std::time::Instant,
) -> Result<Prepared, LaunchError> {
    std::fs::create_dir_all(&setup.data_dir).map_err(|source| LaunchError::DataDir {
        path: setup.data_dir.clone(),
        source,
    })?;
    let identity = match &setup.identity {
        Some((cert, key)) => Identity::from_pem_files(cert, key)?,
        None => Identity::load_or_create(&setup.data_dir, &setup.cluster_name)?,
    };
    let mut trust = TrustStore::new();
    for ca in &setup.trusted_cas {
        trust.add_ca_file(ca)?;
    }
    for cert in &setup.trusted_certificates {
        trust.pin_file(cert)?;
    }
    let trust = Arc::new(trust);
    let password = setup.password.as_deref().filter(|p| !p.is_empty());
    let plain = setup.allow_plaintext_password;
    let main = Authenticator::new(setup.auth, identity.clone(), trust.clone(), password, plain)?;
    let password_port = password
        .map(|p| Authenticator::new(AuthMode::Password, identity, trust.clone(), Some(p), plain))
        .transpose()?;
    let tls: Arc<dyn Transport> = Arc::new(TlsTransport::new(&main, false)?);
    let password_listener: Option<Arc<dyn Transport>> = match &password_port {
        Some(_) if plain => Some(Arc::new(PlainTcp::password_port())),
        Some(a) => Some(Arc::new(TlsTransport::new(a, true)?)),
        None => None,
    };
    let dialer: Arc<dyn Transport> = if setup.auth == AuthMode::Password && plain {
        Arc::new(PlainTcp::default())
    } else {
        tls.clone()
    };
    let mut config = Config::new(
        setup.cluster_id.clone(),
        setup.cluster_name.clone(),
        setup.role,
    );
    config.route_strings = setup.route_strings;
    config.registrar = setup.registrar;
    config.backup_hubs = setup.backup_hubs;
    config.advertise_addrs = setup
        .advertise_addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    config.sync_interval = setup.sync_interval;
    config.uri_policy = setup.uri_policy;
    let mut node_config = config.node_config(crate::driver::new_instance());
    node_config.durable = true;
    let auth = Arc::new(LinkAuthenticator::new(main, password_port));
    let mut node = Node::new(node_config, table.clone(), auth, now);
    let path = setup.data_dir.join(STORE_FILE);
    let store = Store::open(&path)?;
    let report: RestoreReport = store.restore(&mut node, now)?;
    for cert in &report.pinned_certs {
        trust.pin(&rustls_pki_types::CertificateDer::from(cert.as_slice()));
    }
    info!(
        store = %path.display(),
        learned = report.learned,
        in_table = table.len(),
        tombstones = report.tombstones,
        origins = report.origins,
        own = report.own,
        own_version = report.own_version,
        peers = report.peers,
        pinned = report.pinned_certs.len(),
        invalid = report.invalid,
        "ILS state restored"
    );
    let listeners = Listeners {
        tls,
        password: password_listener,
    };
    Ok((node, config, store, listeners, dialer))
}
