//! The running edge: builds the route table and router, starts the SIP proxy, the replication
//! network and the admin API on sockets it binds, and handles signals (SIGHUP reloads the dial
//! plan and the directory; SIGTERM and SIGINT stop gracefully).

use std::sync::Arc;

use anyhow::Context as _;
use dialplan::{LearnedTable, Router};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState, Status};
use crate::config::Config;
use crate::replication::Replication;
use crate::sip::SipEdge;

/// Installs the log subscriber: `filter` in `EnvFilter` syntax, `RUST_LOG` taking precedence.
pub fn init_tracing(filter: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => f,
        _ => filter.to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| format!("--log {filter:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

/// Runs the edge on a multi-threaded runtime until SIGTERM or SIGINT.
pub fn run_blocking(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ils-edge")
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(run(config))
}

/// Runs the edge until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let file = config.file.clone();
    let (cap, dup) = config
        .ils
        .as_ref()
        .map_or((1_000_000, Default::default()), |i| {
            (i.learned_cap, i.duplicate_policy)
        });
    let table = Arc::new(LearnedTable::new(
        cap,
        dup,
        config.cluster.uri_lookup_policy,
    ));
    let shutdown = CancellationToken::new();
    let admin_addr = config.admin;
    // Replication first: it fills the table from the store, so learned URIs route at once.
    let replication = match &config.ils {
        Some(ils) => Some(Arc::new(
            Replication::start(&config, ils, table.clone()).await?,
        )),
        None => None,
    };
    let needs_tls = config
        .sip
        .listeners
        .iter()
        .any(|l| l.transport == dialplan::Transport::Tls);
    let tls = if needs_tls {
        Some(sip_tls_acceptor(&config)?)
    } else {
        None
    };
    let router = Arc::new(Router::new(config.plan, table));
    info!(
        cluster = %config.cluster.id,
        role = %config.cluster.role,
        file = %file.display(),
        "configuration loaded"
    );

    let sip =
        Arc::new(SipEdge::start(&config.sip, &config.cluster.name, router.clone(), tls).await?);

    let status: Arc<dyn Status> = Arc::new(EdgeStatus {
        sip: sip.clone(),
        replication: replication.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let reload = Arc::new(tokio::sync::Notify::new());
    if let Some(addr) = admin_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("admin API: cannot bind {addr}"))?;
        info!("listening proto=admin addr={}", listener.local_addr()?);
        let state = AdminState {
            router: router.clone(),
            status: status.clone(),
            reload: reload.clone(),
        };
        tasks.spawn(admin::serve(listener, state, shutdown.clone()));
    }

    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            () = reload.notified() => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        // SIGHUP or POST /reload: the dial plan, trunks, directory and catalogs, all or nothing.
        match Config::read(&file) {
            Ok(new) => {
                if let Some(r) = &replication {
                    r.advertise(&new);
                }
                sip.reload(&router.plan(), &new.plan);
                router.replace_plan(new.plan);
                info!(file = %file.display(), "configuration reloaded");
            }
            Err(errs) => warn!(errors = %errs, "reload refused: the running configuration stays"),
        }
    }
    info!("stopping");
    // The admin API holds the status (and so the proxy): stop it first.
    shutdown.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            warn!(error = %e, "task ended with an error");
        }
    }
    drop(status);
    let grace = config.sip.shutdown_grace;
    sip.shutdown(grace).await;
    if let Some(r) = &replication {
        r.shutdown(grace).await;
    }
    Ok(())
}

/// The server side of `tls://` SIP listeners: the configured certificate, or the edge's own
/// identity for its cluster name, made on first start in the data directory.
fn sip_tls_acceptor(config: &Config) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let identity = match &config.sip.tls_identity {
        Some((cert, key)) => ils::auth::Identity::from_pem_files(cert, key)?,
        None => ils::auth::Identity::load_or_create(&data_dir(config), &config.cluster.name)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version")?
        .with_no_client_auth()
        .with_single_cert(identity.chain().to_vec(), identity.private_key())
        .context("SIP TLS: certificate and key do not fit")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Where the edge keeps what it makes and learns: `[ils] data_dir`, or `var/` beside the
/// configuration file.
fn data_dir(config: &Config) -> std::path::PathBuf {
    match &config.ils {
        Some(ils) => ils.data_dir.clone(),
        None => config
            .file
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("var"),
    }
}

/// What the admin API reports about the proxy and the replication network.
struct EdgeStatus {
    sip: Arc<SipEdge>,
    replication: Option<Arc<Replication>>,
}

impl Status for EdgeStatus {
    fn peers(&self) -> serde_json::Value {
        self.replication
            .as_ref()
            .map_or_else(|| serde_json::Value::Array(Vec::new()), |r| r.peers_json())
    }

    fn metrics(&self, out: &mut String) {
        self.sip.metrics(out);
        if let Some(r) = &self.replication {
            r.metrics(out);
        }
    }
}
