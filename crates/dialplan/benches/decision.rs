//! The routing decision over 1,000,000 learned URIs, 10,000 local ones and 1,000 route
//! patterns, alone and while a writer applies 10,000-entry batches.
//!
//! Besides criterion's timings, the run prints what criterion does not measure: lookup p50,
//! p99 and maximum per call (each call timed on its own), the same under a concurrent writer
//! with its batch apply times, and heap bytes per learned URI from a counting allocator.
//!
//! Run: `cargo bench -p dialplan --bench decision -- --warm-up-time 1 --measurement-time 3`.
//! Without `--bench` (as `cargo test --benches` runs it) the sizes shrink a hundredfold.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dialplan::{
    ClusterId, Destination, DialPlan, DialPlanBuilder, DialStringInterpretation, DirectoryNumber,
    DirectoryUri, DuplicatePolicy, Inbound, IpPattern, LearnedBatch, LearnedChange, LearnedTable,
    LocalUri, Name, NumericPattern, OptionsPing, PatternAction, RouteRequest, RouteString, Router,
    SipPattern, Transport, TrunkSpec, UriLookupPolicy,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const POLICY: UriLookupPolicy = UriLookupPolicy::CaseSensitive;
const ORIGINS: usize = 50;
const SIP_PATTERNS: usize = 990;
const NUMERIC_PATTERNS: usize = 10;

/// Sizes of one run.
#[derive(Clone, Copy)]
struct Scale {
    learned: usize,
    local: usize,
    batch: usize,
    samples: usize,
}

impl Scale {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Self {
                learned: 1_000_000,
                local: 10_000,
                batch: 10_000,
                samples: 400_000,
            }
        } else {
            Self {
                learned: 10_000,
                local: 100,
                batch: 100,
                samples: 4_000,
            }
        }
    }
}

fn name(s: &str) -> Name {
    Name::new(s).expect("bench names are valid")
}

fn learned_user(i: usize) -> (String, String) {
    (
        format!("user{i:07}"),
        format!("site{}.example.net", i % ORIGINS),
    )
}

fn learned_uri(i: usize) -> DirectoryUri {
    let (user, host) = learned_user(i);
    DirectoryUri::from_parts(&user, &host, POLICY).expect("valid")
}

fn route_string(origin: usize) -> RouteString {
    RouteString::new(&format!("site{origin}.route")).expect("valid")
}

fn trunk(n: &str, accepts: &[&str]) -> TrunkSpec {
    TrunkSpec {
        name: name(n),
        destinations: vec![Destination::parse("192.0.2.1:5060").expect("valid")],
        transport: Transport::Udp,
        accepts: accepts
            .iter()
            .map(|a| IpPattern::parse(a).expect("valid"))
            .collect(),
        inbound_css: name("from-pbx"),
        dial_string: DialStringInterpretation::DigitsStarPlus,
        add_dest_route_string: true,
        route_on_dest_route_string: false,
        options_ping: OptionsPing::default(),
    }
}

/// 3 partitions, 51 trunks, 1,000 patterns (50 route strings, 900 exact domains, 40
/// wildcard domains, 10 numeric) and `local` directory URIs.
fn plan(scale: Scale) -> DialPlan {
    let mut b = DialPlanBuilder::new(POLICY);
    for p in ["Directory URI", "onNetRemote", "extra"] {
        b.partition(name(p)).expect("new partition");
    }
    let css = ["Directory URI", "onNetRemote", "extra"].map(name).to_vec();
    b.css(name("from-pbx"), css).expect("partitions exist");
    b.trunk(trunk("pbx", &["10.0.0.0/8"])).expect("new trunk");
    for o in 0..ORIGINS {
        b.trunk(trunk(&format!("to-site{o}"), &[]))
            .expect("new trunk");
    }
    let to = |k: usize| PatternAction::Route {
        trunk: name(&format!("to-site{}", k % ORIGINS)),
    };
    let mut sip = |text: String, partition: &str, k: usize| {
        let pattern = SipPattern::parse(&text).expect("valid pattern");
        b.sip_route_pattern(pattern, name(partition), to(k))
            .expect("new pattern");
    };
    for o in 0..ORIGINS {
        sip(format!("site{o}.route"), "onNetRemote", o);
    }
    for k in 0..900 {
        sip(format!("dom{k}.example.org"), "extra", k);
    }
    for k in 0..SIP_PATTERNS - 950 {
        sip(format!("*.zone{k}.net"), "extra", k);
    }
    for (k, p) in [
        "1XXXX", "2XXXX", "3XXX", "4[0-5]XX", "5!", "6XXX", "7XXX", "8XXX", "9!", "0",
    ]
    .iter()
    .enumerate()
    {
        let pattern = NumericPattern::parse(p).expect("valid pattern");
        let action = if k == 0 {
            PatternAction::Route { trunk: name("pbx") }
        } else {
            to(k)
        };
        b.numeric_route_pattern(pattern, name("Directory URI"), action)
            .expect("new pattern");
    }
    for i in 0..scale.local {
        b.directory_uri(LocalUri {
            uri: DirectoryUri::parse(&format!("local{i:05}@hq.example.com"), POLICY)
                .expect("valid"),
            partition: name("Directory URI"),
            directory_number: DirectoryNumber::new(&format!("1{i:04}")).expect("valid"),
            advertise: true,
        })
        .expect("new URI");
    }
    let plan = b.build();
    assert_eq!(plan.pattern_count(), SIP_PATTERNS + NUMERIC_PATTERNS);
    plan
}

/// Learns `scale.learned` URIs in 10,000-entry batches, one origin per batch, and returns the
/// table with its heap bytes per URI.
fn learned_table(scale: Scale) -> (Arc<LearnedTable>, f64) {
    let region = Region::new(GLOBAL);
    let table = LearnedTable::new(scale.learned * 2, DuplicatePolicy::FirstLearned, POLICY);
    let origins: Vec<ClusterId> = (0..ORIGINS)
        .map(|o| ClusterId::new(&format!("cluster{o}")).expect("valid"))
        .collect();
    for start in (0..scale.learned).step_by(10_000) {
        for (o, origin) in origins.iter().enumerate() {
            let changes = (start..(start + 10_000).min(scale.learned))
                .filter(|i| i % ORIGINS == o)
                .map(|i| LearnedChange::Upsert {
                    uri: learned_uri(i),
                    route_string: route_string(o),
                    version: 1,
                })
                .collect();
            table.apply(LearnedBatch {
                origin: origin.clone(),
                changes,
            });
        }
    }
    drop(origins);
    let change = region.change();
    let live = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    assert_eq!(table.len(), scale.learned);
    (Arc::new(table), live / scale.learned as f64)
}

/// Requests for learned URIs, spread over the table in a fixed pseudo-random order.
fn learned_requests(scale: Scale) -> Vec<(String, String)> {
    let mut x = 0x9e37_79b9_u64;
    (0..scale.samples.min(100_000))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            learned_user(x as usize % scale.learned)
        })
        .collect()
}

fn request<'a>(user: &'a str, host: &'a str) -> RouteRequest<'a> {
    RouteRequest {
        from: Inbound::Address(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        user: Some(user),
        host,
        dest_route_string: None,
    }
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let i = ((self.0.len() - 1) as f64 * p).round() as usize;
        self.0[i]
    }

    fn summary(&mut self) -> String {
        format!(
            "p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}  ({} calls)",
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
            self.percentile(1.0),
            self.0.len()
        )
    }
}

fn time_each(
    samples: usize,
    reqs: &[(String, String)],
    mut f: impl FnMut(&str, &str),
) -> Latencies {
    let mut out = Vec::with_capacity(samples);
    for k in 0..samples {
        let (user, host) = &reqs[k % reqs.len()];
        let start = Instant::now();
        f(user, host);
        out.push(start.elapsed());
    }
    Latencies(out)
}

/// A writer that applies `batch`-entry batches back to back (9,500 updates, 250 inserts and
/// 250 removes per 10,000) until stopped, and returns each batch's apply time.
fn spawn_writer(
    table: Arc<LearnedTable>,
    scale: Scale,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let origin = ClusterId::new("cluster0").expect("valid");
        let (mut round, mut next_new) = (0usize, scale.learned);
        let mut applied = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let churn = scale.batch / 40;
            let mut changes: Vec<LearnedChange> = (0..scale.batch - 2 * churn)
                .map(|k| {
                    let i = ((round * scale.batch + k) * ORIGINS) % scale.learned;
                    LearnedChange::Upsert {
                        uri: learned_uri(i),
                        route_string: route_string(0),
                        version: round as u64 + 1,
                    }
                })
                .collect();
            for _ in 0..churn {
                let i = next_new * ORIGINS;
                changes.push(LearnedChange::Upsert {
                    uri: learned_uri(i),
                    route_string: route_string(0),
                    version: round as u64 + 1,
                });
                changes.push(LearnedChange::Remove {
                    uri: learned_uri(i),
                    version: round as u64 + 2,
                });
                next_new += 1;
            }
            let start = Instant::now();
            black_box(table.apply(LearnedBatch {
                origin: origin.clone(),
                changes,
            }));
            applied.push(start.elapsed());
            std::thread::sleep(Duration::from_millis(1));
        }
        applied
    })
}

fn decision(c: &mut Criterion) {
    let scale = Scale::from_args();
    let (table, bytes_per_uri) = learned_table(scale);
    let router = Router::new(plan(scale), Arc::clone(&table));
    let reqs = learned_requests(scale);
    println!(
        "dial plan: {} learned URIs, {} local, {} patterns; heap {bytes_per_uri:.1} bytes per learned URI",
        table.len(),
        router.plan().local_uris().count(),
        router.plan().pattern_count()
    );

    // Per-call latencies, no writer.
    let mut get = time_each(scale.samples, &reqs, |user, host| {
        let uri = DirectoryUri::from_parts(user, host, POLICY).expect("valid");
        black_box(table.get(&uri));
    });
    println!("table get (parse + lookup), alone:    {}", get.summary());
    let mut decide = time_each(scale.samples, &reqs, |user, host| {
        black_box(router.decide(&request(user, host)));
    });
    println!("decide learned URI, alone:            {}", decide.summary());

    // The same while a writer applies batches.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(Arc::clone(&table), scale, Arc::clone(&stop));
    let mut busy = time_each(scale.samples * 2, &reqs, |user, host| {
        black_box(router.decide(&request(user, host)));
    });
    stop.store(true, Ordering::Relaxed);
    let mut batches = Latencies(writer.join().expect("writer thread"));
    println!("decide learned URI, writer applying:  {}", busy.summary());
    println!(
        "writer: {} batches of {}, apply p50 {:?} max {:?}; longest read stall {:?}",
        batches.0.len(),
        scale.batch,
        batches.percentile(0.5),
        batches.percentile(1.0),
        busy.percentile(1.0)
    );

    let mut group = c.benchmark_group("decision");
    let mut k = 0;
    group.bench_function("learned_uri", |b| {
        b.iter(|| {
            k += 1;
            let (user, host) = &reqs[k % reqs.len()];
            black_box(router.decide(&request(user, host)))
        })
    });
    let locals: Vec<String> = (0..scale.local).map(|i| format!("local{i:05}")).collect();
    group.bench_function("local_uri", |b| {
        b.iter(|| {
            k += 1;
            black_box(router.decide(&request(&locals[k % locals.len()], "hq.example.com")))
        })
    });
    group.bench_function("not_found", |b| {
        b.iter(|| black_box(router.decide(&request("nobody", "nowhere.example.com"))))
    });
    group.bench_function("wildcard_domain", |b| {
        b.iter(|| black_box(router.decide(&request("x", "a.zone39.net"))))
    });
    group.bench_function("explain_learned_uri", |b| {
        b.iter(|| {
            k += 1;
            let (user, host) = &reqs[k % reqs.len()];
            black_box(router.explain(&request(user, host)))
        })
    });
    group.bench_function("table_get", |b| {
        let uris: Vec<DirectoryUri> = reqs
            .iter()
            .take(10_000)
            .map(|(u, h)| DirectoryUri::from_parts(u, h, POLICY).expect("valid"))
            .collect();
        b.iter(|| {
            k += 1;
            black_box(table.get(&uris[k % uris.len()]))
        })
    });
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
