//! `ils-edge peers` and `ils-edge learned`: views of a running edge through its admin API.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

use crate::admin::{encode, fetch};
use crate::cli::AdminArgs;
use crate::config::Config;

/// Resolves `--admin` or `--config` to the admin API address.
pub fn admin_addr(args: &AdminArgs) -> Result<SocketAddr, String> {
    if let Some(a) = args.admin {
        return Ok(a);
    }
    let path = args
        .config
        .as_deref()
        .unwrap_or(Path::new("config/ils-edge.toml"));
    let cfg = Config::read(path).map_err(|e| e.to_string())?;
    cfg.admin.ok_or_else(|| {
        format!(
            "{}: admin.listen: not set, so there is no admin API to ask",
            path.display()
        )
    })
}

/// The peer vector as a table (or JSON).
pub fn peers(addr: SocketAddr, json: bool) -> Result<String, String> {
    let body = fetch(addr, "/peers")?;
    if json {
        return Ok(body);
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("bad answer: {e}"))?;
    let rows = v.as_array().cloned().unwrap_or_default();
    let cols = [
        "cluster_id",
        "cluster_name",
        "role",
        "address",
        "route_strings",
        "state",
        "last_sync",
        "lag",
    ];
    let heads = [
        "CLUSTER ID",
        "CLUSTER NAME",
        "ROLE",
        "ADDRESS",
        "ROUTE STRINGS",
        "STATE",
        "LAST SYNC",
        "LAG",
    ];
    Ok(table(&heads, &cols, &rows))
}

/// Learned URIs as a table (or JSON).
pub fn learned(
    addr: SocketAddr,
    filter: Option<&str>,
    origin: Option<&str>,
    route_string: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<String, String> {
    let mut path = format!("/learned?limit={limit}");
    for (k, v) in [
        ("uri", filter),
        ("origin", origin),
        ("route_string", route_string),
    ] {
        if let Some(v) = v {
            let _ = write!(path, "&{k}={}", encode(v));
        }
    }
    let body = fetch(addr, &path)?;
    if json {
        return Ok(body);
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("bad answer: {e}"))?;
    let rows = v["entries"].as_array().cloned().unwrap_or_default();
    let mut out = table(
        &["URI", "ROUTE STRING", "CLUSTER ID", "VERSION"],
        &["uri", "route_string", "cluster_id", "version"],
        &rows,
    );
    let _ = writeln!(out, "{} shown of {} learned", v["shown"], v["total"]);
    Ok(out)
}

/// Renders rows of JSON objects as an aligned text table.
fn table(heads: &[&str], cols: &[&str], rows: &[serde_json::Value]) -> String {
    let cell = |row: &serde_json::Value, col: &str| match &row[col] {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(r, c)).collect())
        .collect();
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([heads[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, vals: &[&str]| {
        let parts: Vec<String> = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, heads);
    for r in &cells {
        line(&mut out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}
