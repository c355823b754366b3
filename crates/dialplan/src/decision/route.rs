//! The decision itself, generic over the tracer so the untraced path pays nothing for it.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

use super::trace::{DialClass, Subject, TraceStep, Tracer, WinReason, describe_source};
use super::{Decision, Inbound, RouteRequest};
use crate::ids::{DirectoryUri, Name, RouteString};
use crate::pattern::{NumericPattern, SipPattern};
use crate::plan::{
    Action, Compiled, DialPlan, DialStringInterpretation, PartitionIndex, TrunkSpec,
};
use crate::table::LearnedTable;

/// What step 1 found: the calling search space and how to read the user part.
#[derive(Clone, Copy)]
struct Caller {
    css: u32,
    dial_string: DialStringInterpretation,
    route_on_dest: bool,
}

/// PRODUCT.md steps 1 to 6.
pub(super) fn route<T: Tracer>(
    plan: &DialPlan,
    learned: &LearnedTable,
    req: &RouteRequest<'_>,
    t: &mut T,
) -> Decision {
    // 1. Who is calling.
    let Some(caller) = inbound(plan, req.from, t) else {
        return Decision::Forbidden;
    };
    if let Some(value) = req.dest_route_string
        && let Some(decision) = dest_route(plan, caller, req, value, t)
    {
        return decision;
    }
    // 2. Number or URI.
    let Some(user) = req.user else {
        t.step(|| TraceStep::Classified {
            user: None,
            class: DialClass::Host,
        });
        return host_route(plan, caller.css, req.host, t);
    };
    let mut buf = [0u8; 256];
    if let Some(number) = as_number(user, caller.dial_string, &mut buf) {
        t.step(|| TraceStep::Classified {
            user: Some(user.to_owned()),
            class: DialClass::Number,
        });
        return number_route(plan, caller.css, number, t);
    }
    t.step(|| TraceStep::Classified {
        user: Some(user.to_owned()),
        class: DialClass::Uri,
    });
    let uri = match DirectoryUri::from_parts(user, req.host, plan.policy) {
        Ok(uri) => uri,
        Err(error) => {
            t.step(|| TraceStep::InvalidUri { error });
            return host_route(plan, caller.css, req.host, t);
        }
    };
    // 3. Local directory URI.
    if let Some(local) = local_lookup(plan, caller.css, &uri, t) {
        return local_route(plan, caller.css, uri, local, t);
    }
    // 4. Learned URI.
    let uri = match learned_route(plan, learned, caller.css, uri, t) {
        Ok(decision) => return decision,
        Err(uri) => uri,
    };
    // 5. Host part; 6. nothing matched.
    host_route(plan, caller.css, uri.host(), t)
}

fn inbound<T: Tracer>(plan: &DialPlan, from: Inbound<'_>, t: &mut T) -> Option<Caller> {
    let found = match from {
        Inbound::Trunk(name) => plan.trunk_id(name).map(|id| (id, None)),
        Inbound::Address(addr) => plan.source_match(addr).map(|(p, id)| (id, Some(p))),
    };
    if let Some((id, matched)) = found {
        let trunk = &plan.trunks[id as usize];
        let css = plan.trunk_css[id as usize];
        t.step(|| TraceStep::InboundTrunk {
            trunk: trunk.name.clone(),
            matched: matched.map(ToString::to_string),
            css: plan.css[css as usize].name.clone(),
            dial_string: trunk.dial_string,
        });
        return Some(Caller {
            css,
            dial_string: trunk.dial_string,
            route_on_dest: trunk.route_on_dest_route_string,
        });
    }
    t.step(|| TraceStep::NoInboundTrunk {
        from: match from {
            Inbound::Trunk(name) => format!("trunk name {name:?}"),
            Inbound::Address(addr) => describe_source(addr),
        },
    });
    let css = plan.default_css?;
    t.step(|| TraceStep::DefaultInboundCss {
        css: plan.css[css as usize].name.clone(),
    });
    Some(Caller {
        css,
        dial_string: DialStringInterpretation::default(),
        route_on_dest: false,
    })
}

/// Routes on `X-cisco-dest-route-string` when the trunk honours it. `None` falls through to
/// the ordinary decision (header ignored, or no pattern matches its route string).
fn dest_route<T: Tracer>(
    plan: &DialPlan,
    caller: Caller,
    req: &RouteRequest<'_>,
    value: &str,
    t: &mut T,
) -> Option<Decision> {
    let inner = value.trim();
    let inner = inner
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(inner);
    let inner = inner.strip_prefix("sip:").unwrap_or(inner);
    let route = caller
        .route_on_dest
        .then(|| RouteString::new(inner).ok())
        .flatten();
    let uri = route
        .as_ref()
        .and_then(|_| DirectoryUri::from_parts(req.user?, req.host, plan.policy).ok());
    t.step(|| TraceStep::DestRouteString {
        value: value.to_owned(),
        honoured: uri.is_some(),
    });
    let (route, uri) = (route?, uri?);
    let id = select_domain(plan, caller.css, Subject::RouteString, route.as_str(), t)?;
    Some(match outcome(plan, &plan.sip[id as usize]) {
        Ok((partition, pattern, trunk)) => Decision::Learned {
            uri,
            route_string: route,
            origin: None,
            partition,
            pattern,
            trunk,
        },
        Err(blocked) => blocked,
    })
}

fn number_route<T: Tracer>(plan: &DialPlan, css: u32, number: &str, t: &mut T) -> Decision {
    let Some(id) = select_numeric(plan, css, Subject::Number, number, t) else {
        return Decision::NotFound;
    };
    match outcome(plan, &plan.numeric[id as usize]) {
        Ok((partition, pattern, trunk)) => Decision::Number {
            partition,
            pattern,
            trunk,
        },
        Err(blocked) => blocked,
    }
}

/// The local entry holding `uri` in the first partition of the CSS that has it.
fn local_lookup<T: Tracer>(
    plan: &DialPlan,
    css: u32,
    uri: &DirectoryUri,
    t: &mut T,
) -> Option<u32> {
    let holders = plan.local_index.get(uri.as_str());
    for &p in &plan.css[css as usize].ids {
        let hit = holders.and_then(|h| h.iter().find(|&&i| plan.locals[i as usize].1 == p));
        t.step(|| TraceStep::SearchedPartition {
            partition: plan.partitions[p as usize].clone(),
            found: hit.is_some(),
        });
        if let Some(&i) = hit {
            return Some(i);
        }
    }
    if let Some(holders) = holders {
        t.step(|| TraceStep::OutsideCss {
            partitions: holders
                .iter()
                .map(|&i| plan.locals[i as usize].0.partition.clone())
                .collect(),
        });
    }
    None
}

fn local_route<T: Tracer>(
    plan: &DialPlan,
    css: u32,
    uri: DirectoryUri,
    local: u32,
    t: &mut T,
) -> Decision {
    let entry = &plan.locals[local as usize].0;
    let dn = entry.directory_number.as_str();
    let Some(id) = select_numeric(plan, css, Subject::DirectoryNumber, dn, t) else {
        return Decision::NotFound;
    };
    match outcome(plan, &plan.numeric[id as usize]) {
        Ok((_, pattern, trunk)) => Decision::Local {
            partition: entry.partition.clone(),
            uri,
            directory_number: entry.directory_number.clone(),
            pattern,
            trunk,
        },
        Err(blocked) => blocked,
    }
}

/// Step 4. Gives the URI back when it is not learned or its route string matches no pattern.
fn learned_route<T: Tracer>(
    plan: &DialPlan,
    learned: &LearnedTable,
    css: u32,
    uri: DirectoryUri,
    t: &mut T,
) -> Result<Decision, DirectoryUri> {
    let found = learned.with_route(&uri, |route, origin| {
        t.step(|| TraceStep::Learned {
            route_string: route.clone(),
            origin: origin.clone(),
        });
        if T::ENABLED
            && let Some(conflict) = learned.conflict(&uri)
        {
            t.step(|| TraceStep::Conflict {
                winner: conflict.winner,
                others: conflict.others,
            });
        }
        let id = select_domain(plan, css, Subject::RouteString, route.as_str(), t)?;
        Some((id, route.clone(), origin.clone()))
    });
    let Some(found) = found else {
        t.step(|| TraceStep::NotLearned);
        return Err(uri);
    };
    let Some((id, route_string, origin)) = found else {
        return Err(uri);
    };
    Ok(match outcome(plan, &plan.sip[id as usize]) {
        Ok((partition, pattern, trunk)) => Decision::Learned {
            uri,
            route_string,
            origin: Some(origin),
            partition,
            pattern,
            trunk,
        },
        Err(blocked) => blocked,
    })
}

/// Step 5: the host against domain patterns, or an IP-literal host against IP patterns.
fn host_route<T: Tracer>(plan: &DialPlan, css: u32, host: &str, t: &mut T) -> Decision {
    let host = host.strip_suffix('.').unwrap_or(host);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let id = if let Ok(addr) = bare.parse::<IpAddr>() {
        select(
            plan,
            &plan.sip,
            css,
            Subject::Host,
            bare,
            t,
            |_| None,
            |i, scan| scan(&i.ip),
            |p| matches!(p, SipPattern::Ip(ip) if ip.contains(addr)),
        )
    } else {
        let mut buf = [0u8; 256];
        let Some(lower) = ascii_lowercase(host, &mut buf) else {
            t.step(|| TraceStep::NoMatch {
                subject: Subject::Host,
                value: host.to_owned(),
            });
            return Decision::NotFound;
        };
        select_domain(plan, css, Subject::Host, lower, t)
    };
    let Some(id) = id else {
        return Decision::NotFound;
    };
    match outcome(plan, &plan.sip[id as usize]) {
        Ok((partition, pattern, trunk)) => Decision::Domain {
            partition,
            pattern,
            trunk,
        },
        Err(blocked) => blocked,
    }
}

/// The best domain pattern for a lower-case host or route string.
fn select_domain<T: Tracer>(
    plan: &DialPlan,
    css: u32,
    subject: Subject,
    value: &str,
    t: &mut T,
) -> Option<u32> {
    select(
        plan,
        &plan.sip,
        css,
        subject,
        value,
        t,
        |i| i.domain_exact.get(value).copied(),
        |i, scan| {
            if !i.domain_suffix.is_empty() {
                let mut suffix = value;
                loop {
                    if let Some(group) = i.domain_suffix.get(suffix) {
                        scan(group);
                    }
                    let Some((_, rest)) = suffix.split_once('.') else {
                        break;
                    };
                    suffix = rest;
                }
            }
            scan(&i.domain_wild);
        },
        |p| matches!(p, SipPattern::Domain(d) if d.matches(value)),
    )
}

fn select_numeric<T: Tracer>(
    plan: &DialPlan,
    css: u32,
    subject: Subject,
    value: &str,
    t: &mut T,
) -> Option<u32> {
    select(
        plan,
        &plan.numeric,
        css,
        subject,
        value,
        t,
        |i| i.numeric_exact.get(value).copied(),
        |i, scan| scan(&i.numeric_wild),
        |p: &NumericPattern| p.matches(value),
    )
}

/// The closest match among the patterns of the CSS's partitions: the most specific wins, the
/// earlier partition breaks ties. Each partition offers its exact hit, then its wildcard
/// lists, each most specific first; untraced, a list scan stops at its first match or as soon
/// as no remaining pattern can beat the best so far.
#[allow(
    clippy::too_many_arguments,
    reason = "one generic search over three indexes"
)]
fn select<T: Tracer, P>(
    plan: &DialPlan,
    patterns: &[Compiled<P>],
    css: u32,
    subject: Subject,
    value: &str,
    t: &mut T,
    exact: impl Fn(&PartitionIndex) -> Option<u32>,
    wild: impl Fn(&PartitionIndex, &mut dyn FnMut(&[u32])),
    matches: impl Fn(&P) -> bool,
) -> Option<u32> {
    t.step(|| TraceStep::Matching {
        subject,
        value: value.to_owned(),
    });
    let mut best = Best::default();
    for &p in &plan.css[css as usize].ids {
        let index = &plan.index[p as usize];
        if let Some(id) = exact(index) {
            best.offer(plan, patterns, id, t);
        }
        wild(index, &mut |list: &[u32]| {
            for &id in list {
                let candidate = &patterns[id as usize];
                if !T::ENABLED
                    && let Some(b) = best.id
                    && candidate.specificity <= patterns[b as usize].specificity
                {
                    break;
                }
                if matches(&candidate.pattern) {
                    best.offer(plan, patterns, id, t);
                    if !T::ENABLED {
                        break;
                    }
                }
            }
        });
    }
    let Some(id) = best.id else {
        t.step(|| TraceStep::NoMatch {
            subject,
            value: value.to_owned(),
        });
        return None;
    };
    t.step(|| {
        let winner = &patterns[id as usize];
        TraceStep::Winner {
            pattern: winner.text.to_string(),
            partition: plan.partitions[winner.partition as usize].clone(),
            reason: match (best.candidates, best.tied) {
                (1, _) => WinReason::OnlyMatch,
                (_, 1) => WinReason::MostSpecific {
                    candidates: best.candidates,
                },
                (_, tied) => WinReason::CssOrder { tied },
            },
        }
    });
    Some(id)
}

#[derive(Default)]
struct Best {
    id: Option<u32>,
    candidates: usize,
    tied: usize,
}

impl Best {
    fn offer<T: Tracer, P>(
        &mut self,
        plan: &DialPlan,
        patterns: &[Compiled<P>],
        id: u32,
        t: &mut T,
    ) {
        let candidate = &patterns[id as usize];
        self.candidates += 1;
        t.step(|| TraceStep::PatternCandidate {
            pattern: candidate.text.to_string(),
            partition: plan.partitions[candidate.partition as usize].clone(),
            specificity: candidate.specificity.clone(),
        });
        let order = self
            .id
            .map(|b| candidate.specificity.cmp(&patterns[b as usize].specificity));
        match order {
            // Earlier candidates come from earlier partitions: a tie keeps them.
            Some(Ordering::Equal) => self.tied += 1,
            Some(Ordering::Less) => {}
            Some(Ordering::Greater) | None => {
                self.id = Some(id);
                self.tied = 1;
            }
        }
    }
}

/// The winning pattern's partition, text and trunk, or the blocked decision.
fn outcome<P>(
    plan: &DialPlan,
    winner: &Compiled<P>,
) -> Result<(Name, String, Arc<TrunkSpec>), Decision> {
    let partition = plan.partitions[winner.partition as usize].clone();
    let pattern = winner.text.to_string();
    match winner.action {
        Action::Route(trunk) => Ok((partition, pattern, Arc::clone(&plan.trunks[trunk as usize]))),
        Action::Block(status) => Err(Decision::Blocked {
            partition,
            pattern,
            status,
        }),
    }
}

/// Decodes the user part into `buf` and returns it when the dial string interpretation takes
/// it for a number (letters `a`-`d` upper-cased, as numeric patterns hold them).
fn as_number<'b>(
    user: &str,
    mode: DialStringInterpretation,
    buf: &'b mut [u8; 256],
) -> Option<&'b str> {
    if mode == DialStringInterpretation::AlwaysUri {
        return None;
    }
    let raw = user.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            i += 3;
            u8::from_str_radix(hex, 16).ok()?
        } else {
            i += 1;
            raw[i - 1]
        };
        *buf.get_mut(n)? = b.to_ascii_uppercase();
        n += 1;
    }
    let number = &buf[..n];
    if !mode.is_number(number) {
        return None;
    }
    // `is_number` admits ASCII only.
    std::str::from_utf8(number).ok()
}

fn ascii_lowercase<'b>(s: &str, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let out = buf.get_mut(..s.len())?;
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}
