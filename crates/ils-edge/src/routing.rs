//! The proxy's [`Route`]: the dial plan decision for each out-of-dialog request, turned into a
//! trunk's live destinations (or a failure status), with counters by decision.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dialplan::{Decision, Inbound, Router};
use sip_proxy::message::Scheme;
use sip_proxy::trunk::{Health, TrunkTable};
use sip_proxy::{Route, RouteRequest, RouteResult, Target};

/// Routes requests by the dial plan over the trunk table's healthy destinations.
pub struct EdgeRoute {
    router: Arc<Router>,
    trunks: Arc<TrunkTable>,
    counters: Arc<Counters>,
}

/// Decisions taken, by kind (in the order of [`KINDS`]).
#[derive(Default)]
pub struct Counters {
    by_kind: [AtomicU64; KINDS.len()],
    no_destination: AtomicU64,
    decide_nanos: AtomicU64,
}

/// The decision kinds, as `Decision::kind` names them.
pub const KINDS: [&str; 7] = [
    "local",
    "learned",
    "number",
    "domain",
    "blocked",
    "not-found",
    "forbidden",
];

impl EdgeRoute {
    /// A route over `router` and `trunks`, counting into `counters`.
    pub fn new(router: Arc<Router>, trunks: Arc<TrunkTable>, counters: Arc<Counters>) -> Self {
        Self {
            router,
            trunks,
            counters,
        }
    }
}

impl Route for EdgeRoute {
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult {
        let started = std::time::Instant::now();
        let uri = req.uri;
        let (user, host) = match uri.scheme() {
            // tel:+14085550100: the number is all there is; no host to route on.
            Scheme::Tel => match uri.user().map(std::str::from_utf8) {
                Some(Ok(u)) => (Some(u), ""),
                _ => return reject(400, "Bad Request"),
            },
            _ => match uri.user().map(std::str::from_utf8) {
                Some(Ok(u)) => (Some(u), uri.host()),
                Some(Err(_)) => return reject(400, "Bad Request"),
                None => (None, uri.host()),
            },
        };
        let dest_route_string = req
            .dest_route
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(strip_sip_uri);
        let decision = self.router.decide(&dialplan::RouteRequest {
            from: Inbound::Address(req.source.addr.ip()),
            user,
            host,
            dest_route_string,
        });
        let kind = KINDS
            .iter()
            .position(|k| *k == decision.kind())
            .unwrap_or(0);
        self.counters.by_kind[kind].fetch_add(1, Ordering::Relaxed);
        let result = match &decision {
            Decision::Local { trunk, .. }
            | Decision::Number { trunk, .. }
            | Decision::Domain { trunk, .. } => self.forward(trunk.name.as_str(), Vec::new()),
            Decision::Learned {
                trunk,
                route_string,
                ..
            } => {
                let headers = if trunk.add_dest_route_string {
                    vec![(
                        "X-cisco-dest-route-string".to_owned(),
                        format!("<sip:{route_string}>"),
                    )]
                } else {
                    Vec::new()
                };
                self.forward(trunk.name.as_str(), headers)
            }
            // The proxy fills in the standard reason phrase for the configured status.
            Decision::Blocked { status, .. } => reject(*status, ""),
            Decision::NotFound => reject(404, "Not Found"),
            Decision::Forbidden => reject(403, "Forbidden"),
            // `Decision` may grow; anything we do not know how to serve is refused.
            #[allow(unreachable_patterns)]
            _ => reject(500, "Server Internal Error"),
        };
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters
            .decide_nanos
            .fetch_add(nanos, Ordering::Relaxed);
        result
    }
}

impl EdgeRoute {
    fn forward(&self, trunk: &str, headers: Vec<(String, String)>) -> RouteResult {
        let destinations = self.trunks.destinations(trunk);
        if destinations.is_empty() {
            self.counters.no_destination.fetch_add(1, Ordering::Relaxed);
            return reject(503, "Service Unavailable");
        }
        RouteResult::Forward(Target {
            trunk: trunk.to_owned(),
            destinations,
            headers,
        })
    }
}

impl Counters {
    /// Appends Prometheus text for the decisions and the trunk destinations.
    pub fn metrics(&self, trunks: &TrunkTable, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP ils_edge_route_decisions_total Routing decisions by kind."
        );
        let _ = writeln!(out, "# TYPE ils_edge_route_decisions_total counter");
        for (kind, n) in KINDS.iter().zip(&self.by_kind) {
            let _ = writeln!(
                out,
                "ils_edge_route_decisions_total{{decision=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let total: u64 = self.by_kind.iter().map(|n| n.load(Ordering::Relaxed)).sum();
        let nanos = self.decide_nanos.load(Ordering::Relaxed);
        crate::admin::metric(
            out,
            "ils_edge_route_decision_seconds_total",
            "counter",
            "Time spent deciding routes.",
            nanos as f64 / 1e9,
        );
        crate::admin::metric(
            out,
            "ils_edge_route_decision_count",
            "counter",
            "Routing decisions taken.",
            total as f64,
        );
        crate::admin::metric(
            out,
            "ils_edge_route_no_destination_total",
            "counter",
            "Requests answered 503 because every destination of the trunk was down.",
            self.no_destination.load(Ordering::Relaxed) as f64,
        );
        let _ = writeln!(
            out,
            "# HELP ils_edge_trunk_destination_up Trunk destination state (1 up or not yet pinged, 0 down)."
        );
        let _ = writeln!(out, "# TYPE ils_edge_trunk_destination_up gauge");
        for (trunk, peer, health) in trunks.snapshot() {
            let up = u8::from(health != Health::Down);
            let _ = writeln!(
                out,
                "ils_edge_trunk_destination_up{{trunk=\"{trunk}\",destination=\"{}\",transport=\"{}\"}} {up}",
                peer.addr, peer.transport
            );
        }
    }
}

/// `<sip:hq.route>` or `sip:hq.route` to `hq.route`.
fn strip_sip_uri(v: &str) -> &str {
    let v = v.trim().trim_start_matches('<').trim_end_matches('>');
    let v = v
        .strip_prefix("sip:")
        .or_else(|| v.strip_prefix("sips:"))
        .unwrap_or(v);
    v.split([';', '>']).next().unwrap_or(v)
}

fn reject(status: u16, reason: &'static str) -> RouteResult {
    RouteResult::Reject {
        status,
        reason: Cow::Borrowed(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_route_string_forms() {
        assert_eq!(strip_sip_uri("<sip:hq.route>"), "hq.route");
        assert_eq!(strip_sip_uri("sip:hq.route;lr"), "hq.route");
        assert_eq!(strip_sip_uri(" hq.route "), "hq.route");
    }
}
