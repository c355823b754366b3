//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A SIP edge proxy that routes calls between voice clusters by directory URI, fed by an
/// ILS-style replication network.
#[derive(Debug, Parser)]
#[command(name = "ils-edge", version, about)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the edge: SIP proxy, replication network and admin API.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "config/ils-edge.toml")]
        config: PathBuf,
    },
    /// Shows the peer vector of a running edge (CUCM: `utils ils showpeerinfo`).
    Peers {
        /// How to reach the edge.
        #[command(flatten)]
        admin: AdminArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the URIs a running edge has learned, with route string and cluster ID.
    Learned {
        /// How to reach the edge.
        #[command(flatten)]
        admin: AdminArgs,
        /// Only URIs containing this text.
        filter: Option<String>,
        /// Only URIs learned from this cluster.
        #[arg(long)]
        origin: Option<String>,
        /// Only URIs with this route string.
        #[arg(long)]
        route_string: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks a configuration file: exit 0, or every error (file, key, reason) and exit 64.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Shows the routing decision for one request and every step that led to it.
    RouteTest {
        /// The edge's configuration.
        #[arg(long, default_value = "config/ils-edge.toml")]
        config: PathBuf,
        /// Ask a running edge instead (its admin API, `ADDR:PORT`): the live learned table.
        #[arg(long, conflicts_with = "learned")]
        admin: Option<std::net::SocketAddr>,
        /// The caller: a trunk name, or a source IP address matched as the proxy would.
        #[arg(long)]
        from: String,
        /// Learned entries to load first (CSV: uri, route string, origin cluster).
        #[arg(long)]
        learned: Option<PathBuf>,
        /// An X-cisco-dest-route-string value carried by the request.
        #[arg(long)]
        dest_route_string: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// The Request-URI, e.g. sip:alice@hq.example.com.
        uri: String,
    },
    /// Checks a catalog CSV (uri[, route string]) and installs it in the edge's data directory;
    /// a running edge reloads and advertises it at once.
    ImportCatalog {
        /// The edge's configuration.
        #[arg(long, default_value = "config/ils-edge.toml")]
        config: PathBuf,
        /// The catalog's name (replaces a catalog of the same name).
        #[arg(long)]
        name: String,
        /// The route string for rows that name none.
        #[arg(long)]
        route_string: Option<String>,
        /// Do not ask the running edge to reload.
        #[arg(long)]
        no_reload: bool,
        /// The CSV file.
        file: PathBuf,
    },
    /// Writes a directory file of userNNNNN@DOMAIN entries for load runs.
    GenerateDirectory {
        /// How many URIs.
        #[arg(long)]
        count: u64,
        /// Their host part.
        #[arg(long)]
        domain: String,
        /// Their partition.
        #[arg(long, default_value = "Directory URI")]
        partition: String,
        /// The first directory number.
        #[arg(long, default_value_t = 100_000)]
        first_dn: u64,
        /// Advertise them through ILS.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        advertise: bool,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// How to reach a running edge's admin API.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin API address (`ADDR:PORT`).
    #[arg(long, conflicts_with = "config")]
    pub admin: Option<std::net::SocketAddr>,
    /// The edge's configuration, whose `[admin] listen` is used.
    #[arg(long)]
    pub config: Option<PathBuf>,
}
