//! The admin HTTP API (loopback only) and the small client the operators' commands use.
//!
//! | path | what |
//! |---|---|
//! | `/health` | `ok` |
//! | `/metrics` | Prometheus text: calls by decision, latency, per-peer sync lag, table sizes, trunk destination states |
//! | `/peers` | the peer vector (`ils-edge peers`) |
//! | `/learned?uri=&origin=&route_string=&limit=` | learned URIs (`ils-edge learned`) |
//! | `/conflicts` | URIs learned from more than one cluster |
//! | `/route-test?from=&uri=&dest_route_string=` | the decision against the live table |
//! | `POST /reload` | reload configuration, directory and catalogs, as SIGHUP does |

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::Router as Http;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dialplan::{ClusterId, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::route_test;

/// What the running edge reports beyond the route table.
pub trait Status: Send + Sync + 'static {
    /// The peer vector as JSON (an array of objects).
    fn peers(&self) -> serde_json::Value;
    /// Appends Prometheus text for the proxy and the replication network.
    fn metrics(&self, out: &mut String);
}

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The live router (dial plan and learned table).
    pub router: Arc<Router>,
    /// The rest of the edge.
    pub status: Arc<dyn Status>,
    /// Notified by `POST /reload`: the edge reloads as on SIGHUP.
    pub reload: Arc<tokio::sync::Notify>,
}

/// Serves the admin API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Http::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/peers", get(peers))
        .route("/learned", get(learned))
        .route("/conflicts", get(conflicts))
        .route("/route-test", get(route_test_live))
        .route("/reload", axum::routing::post(reload))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut out = String::with_capacity(4096);
    let table = s.router.learned();
    let plan = s.router.plan();
    metric(
        &mut out,
        "ils_edge_learned_uris",
        "gauge",
        "Learned directory URIs in the route table.",
        table.len() as f64,
    );
    metric(
        &mut out,
        "ils_edge_learned_cap",
        "gauge",
        "The cap on learned directory URIs.",
        table.cap() as f64,
    );
    metric(
        &mut out,
        "ils_edge_learned_cap_reached",
        "gauge",
        "1 when the learned cap is reached.",
        f64::from(u8::from(table.cap_reached())),
    );
    metric(
        &mut out,
        "ils_edge_learned_refused_total",
        "counter",
        "Learned URIs refused because the cap was reached.",
        table.refused() as f64,
    );
    metric(
        &mut out,
        "ils_edge_local_uris",
        "gauge",
        "Local directory URIs.",
        plan.local_uris().count() as f64,
    );
    s.status.metrics(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Appends one Prometheus metric without labels.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

async fn reload(State(s): State<AdminState>) -> Response {
    s.reload.notify_one();
    "reloading\n".into_response()
}

async fn peers(State(s): State<AdminState>) -> Response {
    axum::Json(s.status.peers()).into_response()
}

#[derive(Deserialize)]
struct LearnedQuery {
    uri: Option<String>,
    origin: Option<String>,
    route_string: Option<String>,
    limit: Option<usize>,
}

async fn learned(State(s): State<AdminState>, Query(q): Query<LearnedQuery>) -> Response {
    let table = s.router.learned();
    let entries = match q.origin.as_deref().map(ClusterId::new) {
        Some(Ok(origin)) => table.entries_of(&origin),
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, format!("origin: {e}\n")).into_response(),
        None => table.entries(),
    };
    let limit = q.limit.unwrap_or(1000);
    let total = entries.len();
    let rows: Vec<_> = entries
        .iter()
        .filter(|e| q.uri.as_deref().is_none_or(|u| e.uri.as_str().contains(u)))
        .filter(|e| {
            q.route_string
                .as_deref()
                .is_none_or(|r| e.route_string.as_str().eq_ignore_ascii_case(r))
        })
        .take(limit)
        .map(|e| {
            serde_json::json!({
                "uri": e.uri.as_str(),
                "route_string": e.route_string.as_str(),
                "cluster_id": e.origin.as_str(),
                "version": e.version,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "total": total, "shown": rows.len(), "entries": rows }))
        .into_response()
}

async fn conflicts(State(s): State<AdminState>) -> Response {
    let rows: Vec<_> = s
        .router
        .learned()
        .conflicts()
        .iter()
        .map(|c| {
            serde_json::json!({
                "uri": c.uri.as_str(),
                "winner": c.winner.as_str(),
                "others": c.others.iter().map(ClusterId::as_str).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(rows).into_response()
}

#[derive(Deserialize)]
struct RouteTestQuery {
    from: String,
    uri: String,
    dest_route_string: Option<String>,
}

async fn route_test_live(State(s): State<AdminState>, Query(q): Query<RouteTestQuery>) -> Response {
    match route_test::explain(&s.router, &q.from, &q.uri, q.dest_route_string.as_deref()) {
        Ok(outcome) => axum::Json(outcome.to_json()).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

// === client ===

/// Fetches `path` from the admin API at `addr` and returns the body of a `200` answer.
pub fn fetch(addr: SocketAddr, path: &str) -> Result<String, String> {
    request(addr, "GET", path)
}

/// Posts to `path` (no body) and returns the body of a `200` answer.
pub fn post(addr: SocketAddr, path: &str) -> Result<String, String> {
    request(addr, "POST", path)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Result<String, String> {
    let timeout = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot reach the admin API at {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: malformed HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{addr}{path}: HTTP {status}: {}", body.trim()));
    }
    Ok(body.to_owned())
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
