//! Response processing (RFC 3261 §16.7, §16.8): forwarding provisional and 2xx responses at
//! once, serial failover on timeout, transport error or 503, choosing the best final response,
//! and stateless forwarding of responses that match no transaction.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::addr::BRANCH_PREFIX;
use super::{Core, Event, FailReason, Route};
use crate::message::{Editor, Message, Method};
use crate::transaction::{ClientId, Peer, ServerId, Transport};

impl<R: Route> Core<R> {
    pub(super) fn on_response(&mut self, now: Instant, client: ClientId, msg: Message) {
        let Some(status) = msg.status() else { return };
        if let Some(&peer) = self.pings.get(&client) {
            if status >= 200 {
                self.pings.remove(&client);
                self.events
                    .report(now, Event::PingAnswered { peer, status });
            }
            return;
        }
        let Some(&id) = self.by_client.get(&client) else {
            // A retransmitted 2xx after the context ended still goes upstream (RFC 6026).
            if (200..300).contains(&status) {
                self.forward_stray_response(&msg);
            }
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&id) else {
            self.by_client.remove(&client);
            return;
        };
        let peer = ctx.branch.map(|(_, p)| p);
        match status {
            100..=199 => {
                ctx.provisional = true;
                if ctx.cancel_pending {
                    ctx.cancel_pending = false;
                    self.tsx.cancel(now, client);
                }
                if status > 100 {
                    let bytes = upstream(&msg, &ctx.request);
                    self.tsx.respond(now, id, status, bytes);
                }
            }
            200..=299 => {
                if let Some(peer) = peer {
                    self.events.report(now, Event::DestinationAnswered { peer });
                }
                self.by_client.remove(&client);
                let bytes = upstream(&msg, &ctx.request);
                self.contexts.remove(&id);
                self.tsx.respond(now, id, status, bytes);
            }
            _ => {
                if let Some(peer) = peer {
                    let event = if status == 503 {
                        Event::DestinationFailed {
                            peer,
                            reason: FailReason::Unavailable,
                        }
                    } else {
                        Event::DestinationAnswered { peer }
                    };
                    self.events.report(now, event);
                }
                self.by_client.remove(&client);
                ctx.branch = None;
                let failover = status == 503 && !ctx.cancelled && ctx.next < ctx.targets.len();
                keep_best(&mut ctx.best, status, Some(msg));
                if failover {
                    self.forward_next(now, id);
                } else {
                    self.finish(now, id);
                }
            }
        }
    }

    /// A branch timed out or could not be sent: fail over or finish (§16.7 step 2, §16.8).
    pub(super) fn on_branch_failure(
        &mut self,
        now: Instant,
        client: ClientId,
        provisional: bool,
        transport: bool,
    ) {
        if let Some(peer) = self.pings.remove(&client) {
            self.events.report(now, Event::PingFailed { peer });
            return;
        }
        let Some(id) = self.by_client.remove(&client) else {
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let peer = ctx.branch.take().map(|(_, p)| p);
        if provisional {
            // Timer C: cancel the branch and answer as if it returned 408 (§16.8).
            self.tsx.cancel(now, client);
            keep_best(&mut ctx.best, 408, None);
            self.finish(now, id);
            return;
        }
        let reason = if transport {
            FailReason::Transport
        } else {
            FailReason::Timeout
        };
        if let Some(peer) = peer {
            self.events
                .report(now, Event::DestinationFailed { peer, reason });
        }
        // A destination that never answered, not even 100, is unreachable like one whose
        // connection failed: when every destination is, the trunk is out of service and the
        // caller gets 503 (CUCM's answer), not the 408 of a reachable callee that timed out.
        // A non-INVITE keeps 408, which RFC 4320 has us swallow rather than send.
        let unreachable = if transport || ctx.method == Method::Invite {
            503
        } else {
            408
        };
        keep_best(&mut ctx.best, unreachable, None);
        if !ctx.cancelled && ctx.next < ctx.targets.len() {
            self.forward_next(now, id);
        } else {
            self.finish(now, id);
        }
    }

    /// Sends the best final response upstream and forgets the context (§16.7 step 6).
    pub(super) fn finish(&mut self, now: Instant, id: ServerId) {
        let Some(ctx) = self.contexts.remove(&id) else {
            return;
        };
        if let Some((client, _)) = ctx.branch {
            self.by_client.remove(&client);
        }
        match ctx.best {
            Some((status, Some(resp))) if status != 503 => {
                let bytes = upstream(&resp, &ctx.request);
                self.tsx.respond(now, id, status, bytes);
            }
            // A 503 from downstream means that element is overloaded, not the one upstream.
            Some((503, Some(_))) => {
                self.reply(now, id, &ctx.request, 500, "Server Internal Error", None)
            }
            _ if ctx.cancelled => {
                self.reply(now, id, &ctx.request, 487, "Request Terminated", None)
            }
            Some((503, None)) => {
                self.reply(now, id, &ctx.request, 503, "Service Unavailable", None)
            }
            // RFC 4320 §4.2: the client of a non-INVITE has given up by now; no 408.
            _ if ctx.method != Method::Invite => self.tsx.forget_server(id),
            _ => self.reply(now, id, &ctx.request, 408, "Request Timeout", None),
        }
    }

    /// Forwards a response that matches no client transaction by its second Via (§16.7 step 2
    /// with §18.2.2), when the top Via is ours.
    pub(super) fn forward_stray_response(&mut self, msg: &Message) {
        let mut vias = msg.vias();
        let Some(Ok(top)) = vias.next() else { return };
        let ours = top
            .branch()
            .is_some_and(|b| b.starts_with(BRANCH_PREFIX.as_bytes()))
            && self.config.is_local(top.host(), top.port());
        if !ours {
            tracing::debug!("dropping stray response not addressed to us");
            return;
        }
        let Some(Ok(next)) = vias.next() else { return };
        let Some(transport) = Transport::from_token(next.transport()) else {
            return;
        };
        let ip = match next.received() {
            Some(ip) => ip,
            None => match next.host().parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return,
            },
        };
        let port = next
            .rport()
            .flatten()
            .or(next.port())
            .unwrap_or(transport.default_port());
        let to = Peer {
            transport,
            addr: SocketAddr::new(ip, port),
        };
        let bytes = Editor::new(msg).remove_top_via().finish();
        self.tsx.send_stateless(to, bytes);
    }
}

/// Keeps the better of two final responses: any 6xx, else the lowest class; a real response
/// beats a synthesised one of the same class.
fn keep_best(best: &mut Option<(u16, Option<Message>)>, status: u16, resp: Option<Message>) {
    let rank = |s: u16| if s >= 600 { 0 } else { s / 100 };
    let replace = match best {
        None => true,
        Some((old, old_resp)) => {
            rank(status) < rank(*old)
                || (rank(status) == rank(*old) && old_resp.is_none() && resp.is_some())
        }
    };
    if replace {
        *best = Some((status, resp));
    }
}

/// The response to send upstream over the server transaction: without our Via (§16.7 step 3).
/// A downstream element that answered with only our Via (some UAS scenarios build a 487 from
/// the CANCEL, which carries one Via) gets the request's Vias back, so the response still
/// reaches the caller instead of being dropped by the next hop as malformed.
fn upstream(resp: &Message, request: &Message) -> bytes::Bytes {
    let mut editor = Editor::new(resp);
    editor.remove_top_via();
    if resp.vias().nth(1).is_none() {
        for via in request.header_values(crate::message::HeaderName::Via) {
            editor.add_header("Via", via);
        }
    }
    editor.finish()
}
