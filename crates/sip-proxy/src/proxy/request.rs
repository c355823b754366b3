//! Request processing (RFC 3261 §16.3–16.6, §16.10, §16.11): validation, Route
//! preprocessing, target selection, forwarding to one destination, CANCEL, and the stateless
//! forwarding of ACK for 2xx.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use super::addr::{self, LocalAddr};
use super::{Context, Core, Route, RouteRequest, RouteResult};
use crate::message::{
    Editor, HeaderName, Message, Method, ParseError, ResponseBuilder, Scheme, Uri,
};
use crate::transaction::{OutgoingRequest, Peer, ServerId};

/// How the forwarded copy differs from the received request, apart from Via and Max-Forwards.
#[derive(Debug, Default, Clone)]
pub(super) struct Plan {
    /// A new Request-URI, when the previous hop was a strict router (§16.4).
    request_uri: Option<Vec<u8>>,
    /// Our own Route entries at the top to remove.
    pop_routes: usize,
    /// Remove the last Route (it became the Request-URI).
    pop_last_route: bool,
    record_route: bool,
    headers: Vec<(String, String)>,
}

/// Where the request goes, after Route preprocessing.
enum Hop {
    /// The next Route entry or, in a dialog, the Request-URI: resolved destinations.
    Direct(Vec<Peer>),
    /// Out of dialog: ask the router.
    DialPlan,
}

/// A response we generate instead of forwarding: status, reason, extra header.
type Reject = (u16, Cow<'static, str>, Option<(&'static str, String)>);

impl<R: Route> Core<R> {
    pub(super) fn on_request(&mut self, now: Instant, id: ServerId, from: Peer, msg: Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let in_dialog = msg.to_tag().is_some();
        if self.contexts.len() >= self.config.max_pending || (self.draining && !in_dialog) {
            tracing::warn!(
                pending = self.contexts.len(),
                "overloaded, rejecting request"
            );
            self.reply(
                now,
                id,
                &msg,
                503,
                "Service Unavailable",
                Some(("Retry-After", b"5")),
            );
            return;
        }
        let (plan, targets) = match self.decide(&msg, from, &method) {
            Ok(decided) => decided,
            Err((status, reason, extra)) => {
                let extra = extra.as_ref().map(|(n, v)| (*n, v.as_bytes()));
                self.reply(now, id, &msg, status, &reason, extra);
                return;
            }
        };
        tracing::debug!(method = %method, targets = targets.len(), "forwarding request");
        let ctx = Context {
            request: msg,
            source: from,
            method,
            plan,
            targets,
            next: 0,
            branch: None,
            provisional: false,
            cancel_pending: false,
            cancelled: false,
            best: None,
        };
        self.contexts.insert(id, Box::new(ctx));
        self.forward_next(now, id);
    }

    /// Validates the request and picks its destinations (§16.3, §16.4, §16.5).
    fn decide(
        &self,
        msg: &Message,
        from: Peer,
        method: &Method,
    ) -> Result<(Plan, Vec<Peer>), Reject> {
        let uri = msg
            .request_uri()
            .ok_or((400, "Bad Request-URI".into(), None))?;
        if *method == Method::Options && uri.user().is_none() && self.config.is_local_uri(&uri) {
            return Err((200, "OK".into(), Some(("Allow", ALLOW.to_owned()))));
        }
        if msg.max_forwards() == Some(0) {
            // §16.3 step 3; RFC 3261 §11 lets us answer an OPTIONS ourselves.
            return Err(if *method == Method::Options {
                (200, "OK".into(), Some(("Allow", ALLOW.to_owned())))
            } else {
                (483, "Too Many Hops".into(), None)
            });
        }
        if uri.scheme() == Scheme::Other {
            return Err((416, "Unsupported URI Scheme".into(), None));
        }
        if addr::is_loop(&self.config, msg) {
            return Err((482, "Loop Detected".into(), None));
        }
        let unsupported: Vec<&[u8]> = msg.option_tags(HeaderName::ProxyRequire).collect();
        if !unsupported.is_empty() {
            let tags = unsupported
                .iter()
                .map(|t| String::from_utf8_lossy(t))
                .collect::<Vec<_>>()
                .join(", ");
            return Err((420, "Bad Extension".into(), Some(("Unsupported", tags))));
        }
        let (mut plan, hop) = self.preprocess(msg, &uri)?;
        let targets = match hop {
            Hop::Direct(targets) => targets,
            Hop::DialPlan => {
                let effective = plan.request_uri.as_deref().map(Uri::parse).transpose();
                let effective = effective
                    .map_err(|_| (400, "Bad Route".into(), None))?
                    .unwrap_or(uri);
                let req = RouteRequest {
                    source: from,
                    method,
                    uri: &effective,
                    dest_route: msg.header("X-cisco-dest-route-string"),
                    message: msg,
                };
                match self.router.route(&req) {
                    RouteResult::Forward(target) => {
                        plan.headers = target.headers;
                        let in_dialog = msg.to_tag().is_some();
                        plan.record_route = self.config.record_route
                            && !in_dialog
                            && matches!(method, Method::Invite | Method::Subscribe | Method::Refer);
                        target.destinations
                    }
                    RouteResult::Reject { status, reason } => {
                        let reason = if reason.is_empty() {
                            default_reason(status).into()
                        } else {
                            reason
                        };
                        return Err((status, reason, None));
                    }
                }
            }
        };
        if targets.is_empty() {
            return Err((503, "Service Unavailable".into(), None));
        }
        Ok((plan, targets))
    }

    /// Route preprocessing (§16.4) and the choice between Route set, Request-URI and dial plan.
    fn preprocess(&self, msg: &Message, uri: &Uri<'_>) -> Result<(Plan, Hop), Reject> {
        let routes = msg.routes().collect::<Result<Vec<_>, ParseError>>();
        let routes = routes.map_err(|_| (400, "Bad Route Header".into(), None))?;
        let mut plan = Plan::default();
        let mut remaining = &routes[..];
        if uri.user().is_none() && self.config.is_local_uri(uri) && !routes.is_empty() {
            // The previous hop was a strict router: our Record-Route value is the Request-URI
            // and the real target is the last Route entry.
            if let Some((last, rest)) = routes.split_last() {
                plan.request_uri = Some(last.uri().as_bytes().to_vec());
                plan.pop_last_route = true;
                remaining = rest;
            }
        }
        // Our own entries on top (two after a transport change) are removed.
        while plan.pop_routes < 2
            && remaining
                .get(plan.pop_routes)
                .is_some_and(|r| self.config.is_local_uri(r.uri()))
        {
            plan.pop_routes += 1;
        }
        if let Some(next) = remaining.get(plan.pop_routes) {
            return Ok((plan, Hop::Direct(self.resolve(next.uri()))));
        }
        let in_dialog = msg.to_tag().is_some();
        if in_dialog {
            let target = match &plan.request_uri {
                Some(raw) => Uri::parse(raw).ok().and_then(|u| self.remote_target(&u)),
                None => self.remote_target(uri),
            };
            if let Some(target) = target {
                return Ok((plan, Hop::Direct(target)));
            }
            // Addressed to this proxy inside a dialog (a UA that sends to its outbound proxy
            // instead of the remote Contact, as SIPp's stock scenarios do): this proxy owns the
            // target, so the dial plan finds it (§16.5).
        }
        Ok((plan, Hop::DialPlan))
    }

    /// The destinations of an in-dialog Request-URI, or `None` when it names this proxy.
    fn remote_target(&self, uri: &Uri<'_>) -> Option<Vec<Peer>> {
        (!self.config.is_local_uri(uri)).then(|| self.resolve(uri))
    }

    fn resolve(&self, uri: &Uri<'_>) -> Vec<Peer> {
        match addr::peer_of_uri(uri) {
            Some(peer) => vec![peer],
            None => self.router.resolve(uri),
        }
    }

    /// Sends the request to the next destination of its context, or finishes the context.
    pub(super) fn forward_next(&mut self, now: Instant, id: ServerId) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let Some(&peer) = ctx.targets.get(ctx.next) else {
            self.finish(now, id);
            return;
        };
        if ctx.cancelled {
            self.finish(now, id);
            return;
        }
        let attempt = ctx.next;
        ctx.next += 1;
        let (branch, bytes) = build_forward(&self.config, ctx, peer, attempt);
        // A fast timeout helps when another destination can take over; INVITE always gets it
        // so that a dead trunk is reported in about a second.
        let early_timeout = ctx.method == Method::Invite || ctx.next < ctx.targets.len();
        let req = OutgoingRequest {
            method: ctx.method.clone(),
            branch,
            bytes,
            early_timeout,
        };
        ctx.provisional = false;
        let client = self.tsx.send_request(now, peer, req);
        if let Some(ctx) = self.contexts.get_mut(&id) {
            ctx.branch = Some((client, peer));
        }
        self.by_client.insert(client, id);
    }

    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        id: ServerId,
        invite: Option<ServerId>,
        msg: &Message,
    ) {
        let Some(invite) = invite else {
            // §16.10: no matching INVITE transaction.
            self.reply(now, id, msg, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        self.reply(now, id, msg, 200, "OK", None);
        let Some(ctx) = self.contexts.get_mut(&invite) else {
            return;
        };
        ctx.cancelled = true;
        match ctx.branch {
            // A CANCEL may only follow a provisional response (§9.1); otherwise wait for one.
            Some((client, _)) if ctx.provisional => {
                self.tsx.cancel(now, client);
            }
            Some(_) => ctx.cancel_pending = true,
            None => self.finish(now, invite),
        }
    }

    /// Forwards an ACK for a 2xx statelessly along its Route set or Request-URI (§16.11).
    pub(super) fn on_ack(&mut self, from: Peer, msg: &Message) {
        if msg.max_forwards() == Some(0) || addr::is_loop(&self.config, msg) {
            return;
        }
        let Some(uri) = msg.request_uri() else { return };
        let Ok((plan, hop)) = self.preprocess(msg, &uri) else {
            return;
        };
        let peer = match hop {
            Hop::Direct(targets) => targets.first().copied(),
            Hop::DialPlan => {
                let req = RouteRequest {
                    source: from,
                    method: &Method::Ack,
                    uri: &uri,
                    dest_route: msg.header("X-cisco-dest-route-string"),
                    message: msg,
                };
                match self.router.route(&req) {
                    RouteResult::Forward(target) => target.destinations.first().copied(),
                    RouteResult::Reject { .. } => None,
                }
            }
        };
        let Some(peer) = peer else {
            tracing::debug!("dropping ACK with no next hop");
            return;
        };
        let ctx_plan = Plan {
            record_route: false,
            headers: Vec::new(),
            ..plan
        };
        let (_, bytes) = edit_request(&self.config, msg, from, &ctx_plan, peer, 0);
        self.tsx.send_stateless(peer, bytes);
    }

    /// Sends a response we generate in a server transaction.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        id: ServerId,
        req: &Message,
        status: u16,
        reason: &str,
        extra: Option<(&str, &[u8])>,
    ) {
        let tag = addr::to_tag(req);
        let mut builder = ResponseBuilder::new(req, status, reason)
            .to_tag(tag.as_bytes())
            .header("Server", self.config.server.as_bytes());
        if let Some((name, value)) = extra {
            builder = builder.header(name, value);
        }
        self.tsx.respond(now, id, status, builder.build());
    }

    /// Answers a request that did not parse with `400` (or `505`) statelessly, when the
    /// headers needed for a response are there; drops anything else.
    pub(super) fn reject_malformed(&mut self, from: Peer, bytes: Bytes, err: &ParseError) {
        let Ok(msg) = Message::parse_lenient(bytes) else {
            return;
        };
        if !msg.is_request() || msg.method() == Some(&Method::Ack) || !msg.has(HeaderName::Via) {
            return;
        }
        let (status, reason) = match err {
            ParseError::UnsupportedVersion => (505, "Version Not Supported".to_owned()),
            other => (400, format!("Bad Request ({other})")),
        };
        let tag = addr::to_tag(&msg);
        let resp = ResponseBuilder::new(&msg, status, &reason)
            .to_tag(tag.as_bytes())
            .header("Server", self.config.server.as_bytes())
            .build();
        self.tsx.send_stateless(from, resp);
    }
}

/// Builds the copy of a context's request for one destination.
fn build_forward(
    config: &super::Config,
    ctx: &Context,
    peer: Peer,
    attempt: usize,
) -> (Bytes, Bytes) {
    edit_request(config, &ctx.request, ctx.source, &ctx.plan, peer, attempt)
}

/// Applies §16.6 to `msg` for `peer`: Request-URI, Max-Forwards, Record-Route, Via with a new
/// branch and `received`/`rport` on the previous hop's Via, Route pops, added headers.
fn edit_request(
    config: &super::Config,
    msg: &Message,
    source: Peer,
    plan: &Plan,
    peer: Peer,
    attempt: usize,
) -> (Bytes, Bytes) {
    let fallback = LocalAddr {
        transport: peer.transport,
        addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
    };
    let out_local = config.local_for(peer).unwrap_or(fallback);
    let in_local = config.local_of(source).unwrap_or(out_local);
    let branch = addr::branch(msg, attempt);
    let via = addr::via_value(out_local, &branch);
    let (rr_in, rr_out) = if plan.record_route {
        (
            addr::record_route_value(in_local),
            addr::record_route_value(out_local),
        )
    } else {
        (String::new(), String::new())
    };
    let mut ed = Editor::new(msg);
    ed.prepend_via(via.as_bytes())
        .max_forwards(msg.max_forwards().map_or(70, |n| n.saturating_sub(1)));
    if let Ok(top) = msg.top_via() {
        // RFC 3581 §4 / RFC 3261 §18.2.1: `received` when the sent-by host is not the source
        // address, or when rport asks for it; `rport` filled with the source port.
        let sent_by: Option<IpAddr> = top.host().parse().ok();
        let rport = top.rport().map(|_| source.addr.port());
        if sent_by != Some(source.addr.ip()) || rport.is_some() {
            ed.top_via_received(Some(source.addr.ip()), rport);
        }
    }
    if let Some(uri) = &plan.request_uri {
        ed.request_uri(uri);
    }
    for _ in 0..plan.pop_routes {
        ed.pop_route();
    }
    if plan.pop_last_route {
        ed.pop_last_route();
    }
    if plan.record_route {
        ed.prepend_record_route(rr_in.as_bytes());
        if in_local != out_local {
            // A transport or interface change needs two entries (RFC 5658 double Record-Route).
            ed.prepend_record_route(rr_out.as_bytes());
        }
    }
    for (name, value) in &plan.headers {
        ed.add_header(name, value.as_bytes());
    }
    (Bytes::from(branch), ed.finish())
}

fn default_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        _ => "Rejected",
    }
}

const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE, PRACK";
