//! `ils-edge route-test`: the routing decision for one request, with every step that led to it,
//! like CUCM's Dialed Number Analyzer.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use dialplan::{
    Decision, Inbound, LearnedBatch, LearnedChange, LearnedTable, RouteRequest, Router, Trace,
};

use crate::config::{Config, read_learned};

/// A request target as typed on the command line: `sip:user@host`, `user@host` or `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The raw user part, if any.
    pub user: Option<String>,
    /// The host, without port or parameters.
    pub host: String,
}

impl Target {
    /// Parses a SIP URI loosely: scheme, angle brackets, port, parameters and headers dropped.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        let s = match s.split_once(':') {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") =>
            {
                rest
            }
            Some((scheme, _))
                if !scheme.contains('@')
                    && !scheme.contains('[')
                    && scheme.parse::<u16>().is_err() =>
            {
                return Err(format!("unsupported URI scheme {scheme:?}"));
            }
            _ => s,
        };
        let (user, hostport) = match s.rfind('@') {
            Some(at) => (Some(&s[..at]), &s[at + 1..]),
            None => (None, s),
        };
        let user = user.map(|u| u.split(';').next().unwrap_or(u));
        let hostport = hostport.split([';', '?']).next().unwrap_or(hostport);
        let host = if hostport.starts_with('[') {
            hostport.split_inclusive(']').next().unwrap_or(hostport)
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        if host.is_empty() {
            return Err(format!("no host in {s:?}"));
        }
        Ok(Self {
            user: user.map(str::to_owned),
            host: host.to_owned(),
        })
    }
}

/// What the command prints: the decision and its trace.
pub struct Outcome {
    /// The request as understood.
    pub target: Target,
    /// How the caller was given.
    pub from: String,
    /// The decision.
    pub decision: Decision,
    /// The steps that led to it.
    pub trace: Trace,
}

/// Runs a route test against the configuration, with learned entries from `learned` if given.
pub fn run(
    config: Config,
    from: &str,
    uri: &str,
    learned: Option<&Path>,
    dest_route_string: Option<&str>,
) -> Result<Outcome, String> {
    let policy = config.cluster.uri_lookup_policy;
    let (cap, dup) = config
        .ils
        .as_ref()
        .map_or((1_000_000, Default::default()), |i| {
            (i.learned_cap, i.duplicate_policy)
        });
    let table = Arc::new(LearnedTable::new(cap, dup, policy));
    if let Some(path) = learned {
        let rows = read_learned(path, policy)?;
        let mut by_origin: Vec<LearnedBatch> = Vec::new();
        for row in rows {
            let change = LearnedChange::Upsert {
                uri: row.uri,
                route_string: row.route_string,
                version: 1,
            };
            match by_origin.iter_mut().find(|b| b.origin == row.origin) {
                Some(b) => b.changes.push(change),
                None => by_origin.push(LearnedBatch {
                    origin: row.origin,
                    changes: vec![change],
                }),
            }
        }
        for batch in by_origin {
            table.apply(batch);
        }
    }
    let router = Router::new(config.plan, table);
    explain(&router, from, uri, dest_route_string)
}

/// Explains the decision for one request against `router` (a configuration's, or a running
/// edge's live one).
pub fn explain(
    router: &Router,
    from: &str,
    uri: &str,
    dest_route_string: Option<&str>,
) -> Result<Outcome, String> {
    let target = Target::parse(uri)?;
    let inbound = match from.parse::<IpAddr>() {
        Ok(ip) => Inbound::Address(ip),
        Err(_) => {
            if router.plan().trunk(from).is_none() {
                return Err(format!(
                    "--from {from:?} is neither an IP address nor a configured trunk"
                ));
            }
            Inbound::Trunk(from)
        }
    };
    let req = RouteRequest {
        from: inbound,
        user: target.user.as_deref(),
        host: &target.host,
        dest_route_string,
    };
    let (decision, trace) = router.explain(&req);
    Ok(Outcome {
        target,
        from: from.to_owned(),
        decision,
        trace,
    })
}

impl Outcome {
    /// The decision as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "decision": self.decision.kind(),
            "from": self.from,
            "user": self.target.user,
            "host": self.target.host,
            "status": self.decision.status(),
            "partition": null,
            "directory_number": null,
            "route_string": null,
            "origin_cluster": null,
            "pattern": null,
            "trunk": null,
            "destinations": null,
            "trace": self.trace.steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        let set = |v: &mut serde_json::Value, k: &str, x: serde_json::Value| v[k] = x;
        match &self.decision {
            Decision::Local {
                partition,
                uri,
                directory_number,
                pattern,
                trunk,
            } => {
                set(&mut v, "partition", partition.as_str().into());
                set(&mut v, "uri", uri.as_str().into());
                set(&mut v, "directory_number", directory_number.as_str().into());
                set(&mut v, "pattern", pattern.as_str().into());
                set(&mut v, "trunk", trunk.name.as_str().into());
                set(&mut v, "destinations", destinations(trunk));
            }
            Decision::Learned {
                uri,
                route_string,
                origin,
                partition,
                pattern,
                trunk,
            } => {
                set(&mut v, "uri", uri.as_str().into());
                set(&mut v, "route_string", route_string.as_str().into());
                set(
                    &mut v,
                    "origin_cluster",
                    origin.as_ref().map(|o| o.as_str()).into(),
                );
                set(&mut v, "partition", partition.as_str().into());
                set(&mut v, "pattern", pattern.as_str().into());
                set(&mut v, "trunk", trunk.name.as_str().into());
                set(&mut v, "destinations", destinations(trunk));
            }
            Decision::Number {
                partition,
                pattern,
                trunk,
            }
            | Decision::Domain {
                partition,
                pattern,
                trunk,
            } => {
                set(&mut v, "partition", partition.as_str().into());
                set(&mut v, "pattern", pattern.as_str().into());
                set(&mut v, "trunk", trunk.name.as_str().into());
                set(&mut v, "destinations", destinations(trunk));
            }
            Decision::Blocked {
                partition, pattern, ..
            } => {
                set(&mut v, "partition", partition.as_str().into());
                set(&mut v, "pattern", pattern.as_str().into());
            }
            _ => {}
        }
        v
    }

    /// The decision as a few lines for a person.
    pub fn to_text(&self) -> String {
        render_text(&self.to_json())
    }
}

/// Renders the JSON form of a decision (local or from a running edge) for a person.
pub fn render_text(json: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let s = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let user = json
        .get("user")
        .and_then(|v| v.as_str())
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Route test: sip:{user}{} from {}",
        s("host"),
        s("from")
    );
    let _ = writeln!(out, "Trace:");
    for (i, step) in json
        .get("trace")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let _ = writeln!(out, "  {:>2}. {}", i + 1, step.as_str().unwrap_or(""));
    }
    let _ = writeln!(out, "Decision: {}", s("decision"));
    for key in [
        "status",
        "uri",
        "partition",
        "directory_number",
        "route_string",
        "origin_cluster",
        "pattern",
        "trunk",
    ] {
        if let Some(val) = json.get(key).filter(|v| !v.is_null()) {
            let shown = val.as_str().map_or_else(|| val.to_string(), str::to_owned);
            let _ = writeln!(
                out,
                "  {:<17} {shown}",
                format!("{}:", key.replace('_', " "))
            );
        }
    }
    if let Some(d) = json.get("destinations").and_then(|d| d.as_array()) {
        let list: Vec<_> = d.iter().filter_map(|x| x.as_str()).collect();
        let _ = writeln!(out, "  {:<17} {}", "destinations:", list.join(", "));
    }
    out
}

fn destinations(trunk: &dialplan::TrunkSpec) -> serde_json::Value {
    trunk
        .destinations
        .iter()
        .map(|d| serde_json::Value::from(d.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("sip:alice@hq.example.com;transport=udp").unwrap();
        assert_eq!(
            t,
            Target {
                user: Some("alice".into()),
                host: "hq.example.com".into()
            }
        );
        let t = Target::parse("<sips:+1408555@[2001:db8::1]:5061>").unwrap();
        assert_eq!(t.host, "[2001:db8::1]");
        assert_eq!(t.user.as_deref(), Some("+1408555"));
        assert_eq!(Target::parse("hq.route").unwrap().user, None);
        assert_eq!(
            Target::parse("bob@br.example.com:5060").unwrap().host,
            "br.example.com"
        );
        assert!(Target::parse("http://x").is_err());
    }
}
