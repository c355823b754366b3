//! `ils-edge import-catalog`: checks a catalog CSV (URIs with their route string, per row or
//! for the whole catalog) and installs it in the edge's data directory, where the edge reads it
//! at start and on reload; a running edge is told to reload through its admin API.

use std::io::Write as _;
use std::path::Path;

use dialplan::RouteString;

use crate::config::{Config, IMPORTED_CATALOGS, read_catalog};

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// Rows installed.
    pub rows: usize,
    /// Where.
    pub path: std::path::PathBuf,
}

/// Checks `csv` and installs it as catalog `name` of the edge configured by `config`.
pub fn import(
    config: &Config,
    name: &str,
    route_string: Option<&str>,
    csv: &Path,
) -> Result<Imported, String> {
    let ils = config.ils.as_ref().ok_or_else(|| {
        format!(
            "{}: no [ils] section: a standalone edge advertises no catalog",
            config.file.display()
        )
    })?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "catalog name {name:?}: use letters, digits, '-', '_' or '.'"
        ));
    }
    let default = route_string
        .map(RouteString::new)
        .transpose()
        .map_err(|e| format!("--route-string: {e}"))?;
    let rows = read_catalog(csv, default.as_ref(), config.cluster.uri_lookup_policy)?;
    let dir = ils.data_dir.join(IMPORTED_CATALOGS);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.csv"));
    let tmp = dir.join(format!(".{name}.csv.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(f, "uri,route string")?;
        for r in &rows {
            writeln!(f, "{},{}", r.uri, r.route_string)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Imported {
        rows: rows.len(),
        path,
    })
}
