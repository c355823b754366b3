//! CSV files an operator hands the edge: directory files, imported catalogs and learned
//! entries for route tests.
//!
//! Fields may be quoted the way CUCM's Bulk Administration Tool writes them (`"a","b"` with
//! `""` for a quote). A header row is optional; when present, columns are found by name.

use std::path::Path;

use dialplan::{
    ClusterId, DirectoryNumber, DirectoryUri, LocalUri, Name, RouteString, UriLookupPolicy,
};

/// A row of an imported catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The URI.
    pub uri: DirectoryUri,
    /// The route string to advertise it with.
    pub route_string: RouteString,
}

/// A row of a learned-entries file (`uri, route string, origin cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRow {
    /// The URI.
    pub uri: DirectoryUri,
    /// Its route string.
    pub route_string: RouteString,
    /// The cluster it came from.
    pub origin: ClusterId,
}

/// Reads a directory file: `uri, partition, directory number, advertise`, where partition and
/// advertise may be empty or absent (defaults: `default_partition`, true). Returns each entry
/// with its line number.
pub fn read_directory(
    path: &Path,
    default_partition: &Name,
    policy: UriLookupPolicy,
) -> Result<Vec<(u64, LocalUri)>, String> {
    let cols = [
        &["uri", "directory uri", "directoryuri"][..],
        &["partition", "directory uri partition", "route partition"],
        &[
            "directory number",
            "dn",
            "primary extension",
            "directory number 1",
            "number",
        ],
        &[
            "advertise",
            "advertise globally via ils",
            "advertise globally",
        ],
    ];
    read_rows(path, &cols, |line, f| {
        let uri = DirectoryUri::parse(f[0], policy).map_err(|e| format!("uri {:?}: {e}", f[0]))?;
        let partition = match f[1] {
            "" => default_partition.clone(),
            p => Name::new(p).map_err(|e| format!("partition {p:?}: {e}"))?,
        };
        let dn = f[2];
        let directory_number =
            DirectoryNumber::new(dn).map_err(|e| format!("directory number {dn:?}: {e}"))?;
        let advertise = match f[3].to_ascii_lowercase().as_str() {
            "" | "true" | "t" | "yes" | "y" | "1" => true,
            "false" | "f" | "no" | "n" | "0" => false,
            other => return Err(format!("advertise {other:?} is not true or false")),
        };
        Ok((
            line,
            LocalUri {
                uri,
                partition,
                directory_number,
                advertise,
            },
        ))
    })
}

/// Reads a catalog file: `uri[, route string]`; rows without a route string take `default`.
pub fn read_catalog(
    path: &Path,
    default: Option<&RouteString>,
    policy: UriLookupPolicy,
) -> Result<Vec<CatalogEntry>, String> {
    let cols = [
        &["uri", "directory uri"][..],
        &["route string", "route_string", "routestring"],
    ];
    read_rows(path, &cols, |_, f| {
        let uri = DirectoryUri::parse(f[0], policy).map_err(|e| format!("uri {:?}: {e}", f[0]))?;
        let route_string = match (f[1], default) {
            ("", Some(d)) => d.clone(),
            ("", None) => return Err("no route string in the row and none for the catalog".into()),
            (r, _) => RouteString::new(r).map_err(|e| format!("route string {r:?}: {e}"))?,
        };
        Ok(CatalogEntry { uri, route_string })
    })
}

/// Reads learned entries: `uri, route string, origin cluster`.
pub fn read_learned(path: &Path, policy: UriLookupPolicy) -> Result<Vec<LearnedRow>, String> {
    let cols = [
        &["uri", "directory uri"][..],
        &["route string", "route_string", "routestring"],
        &[
            "origin",
            "cluster",
            "cluster id",
            "origin cluster",
            "origin cluster id",
        ],
    ];
    read_rows(path, &cols, |_, f| {
        let uri = DirectoryUri::parse(f[0], policy).map_err(|e| format!("uri {:?}: {e}", f[0]))?;
        let route_string =
            RouteString::new(f[1]).map_err(|e| format!("route string {:?}: {e}", f[1]))?;
        let origin = ClusterId::new(f[2]).map_err(|e| format!("origin cluster {:?}: {e}", f[2]))?;
        Ok(LearnedRow {
            uri,
            route_string,
            origin,
        })
    })
}

/// Reads `path` as CSV with the given columns (each a list of accepted header names; the first
/// column is required, the rest may be empty), calling `row` with the line and the fields.
fn read_rows<T, const N: usize>(
    path: &Path,
    cols: &[&[&str]; N],
    mut row: impl FnMut(u64, [&str; N]) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut order: [Option<usize>; N] = std::array::from_fn(Some);
    let mut out = Vec::new();
    let mut first = true;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if std::mem::take(&mut first) && !rec.get(0).unwrap_or("").contains('@') {
            // A header row: find each column by name.
            for (i, names) in cols.iter().enumerate() {
                order[i] = rec
                    .iter()
                    .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)));
            }
            if order[0].is_none() {
                return Err(format!(
                    "{}:{line}: header has no column {:?}",
                    path.display(),
                    cols[0][0]
                ));
            }
            continue;
        }
        let fields: [&str; N] =
            std::array::from_fn(|i| order[i].and_then(|c| rec.get(c)).unwrap_or(""));
        out.push(row(line, fields).map_err(|e| format!("{}:{line}: {e}", path.display()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn directory_with_cucm_style_header_and_quotes() {
        let f = file(
            "\"DIRECTORY URI\",\"DIRECTORY NUMBER\",\"ROUTE PARTITION\",\"ADVERTISE GLOBALLY VIA ILS\"\n\
             \"alice@HQ.example.com\",\"1001\",\"\",\"t\"\n\
             \"bob@hq.example.com\",\"1002\",\"Sales\",\"f\"\n",
        );
        let dp = Name::new("Directory URI").unwrap();
        let rows = read_directory(f.path(), &dp, UriLookupPolicy::CaseSensitive).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.uri.as_str(), "alice@hq.example.com");
        assert_eq!(rows[0].1.partition, dp);
        assert!(rows[0].1.advertise);
        assert_eq!(rows[1].1.partition.as_str(), "Sales");
        assert_eq!(rows[1].1.directory_number.as_str(), "1002");
        assert!(!rows[1].1.advertise);
    }

    #[test]
    fn directory_positional_and_errors_name_the_line() {
        let f =
            file("carol@hq.example.com,Directory URI,1003,true\nbad-uri,Directory URI,1004,true\n");
        let dp = Name::new("Directory URI").unwrap();
        let err = read_directory(f.path(), &dp, UriLookupPolicy::CaseSensitive).unwrap_err();
        assert!(err.contains(":2:"), "{err}");
        assert!(err.contains("bad-uri"), "{err}");
    }

    #[test]
    fn catalog_default_and_per_row_route_string() {
        let f = file("uri,route string\nx@partner.com,\ny@partner.com,other.route\n");
        let d = RouteString::new("partner.route").unwrap();
        let rows = read_catalog(f.path(), Some(&d), UriLookupPolicy::CaseSensitive).unwrap();
        assert_eq!(rows[0].route_string.as_str(), "partner.route");
        assert_eq!(rows[1].route_string.as_str(), "other.route");
        assert!(read_catalog(f.path(), None, UriLookupPolicy::CaseSensitive).is_err());
    }

    #[test]
    fn learned_rows() {
        let f = file("alice@hq.example.com,hq.route,HQ\n");
        let rows = read_learned(f.path(), UriLookupPolicy::CaseSensitive).unwrap();
        assert_eq!(rows[0].origin.as_str(), "HQ");
        assert_eq!(rows[0].route_string.as_str(), "hq.route");
    }
}
