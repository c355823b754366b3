//! Replication benchmark over real loopback sockets:
//! - full sync of N URIs from a hub to a new spoke (time and bytes on the wire);
//! - propagation delay of one change hub -> hub -> spoke (median and p90 of 50 changes).
//!
//! Run: `cargo bench -p ils --bench replication` (add `-- 100000` to choose the sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, DirectoryUri, Role, RouteString, UriLookupPolicy};
use ils::proto::OpenAuthenticator;
use ils::{ApplyReport, Config, LearnedBatch, LearnedSink, MemorySink, Service, driver::PlainTcp};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A learned table that also reports each batch's arrival.
struct TimedSink {
    table: MemorySink,
    tx: mpsc::UnboundedSender<(Instant, usize)>,
}

impl LearnedSink for TimedSink {
    fn apply(&self, batch: LearnedBatch) -> ApplyReport {
        let r = self.table.apply(batch);
        let _ = self.tx.send((Instant::now(), r.upserted + r.removed));
        r
    }
}

async fn edge(
    id: &str,
    role: Role,
    registrar: Option<&str>,
) -> (Service, String, mpsc::UnboundedReceiver<(Instant, usize)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut c = Config::new(
        ClusterId::new(id).expect("id"),
        format!("{id}.example.com"),
        role,
    );
    c.route_strings = vec![route(id)];
    c.registrar = registrar.map(str::to_owned);
    c.advertise_addrs = vec![addr.clone()];
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Arc::new(TimedSink {
        table: MemorySink::new(),
        tx,
    });
    let s = Service::start(
        c,
        sink,
        Arc::new(OpenAuthenticator),
        Arc::new(PlainTcp::default()),
    )
    .expect("start");
    s.serve(listener).expect("serve");
    (s, addr, rx)
}

fn route(id: &str) -> RouteString {
    RouteString::new(&format!("{}.route", id.to_lowercase())).expect("route")
}

fn uris(n: usize, host: &str) -> Vec<(DirectoryUri, RouteString)> {
    let r = route("HQ");
    (0..n)
        .map(|i| {
            let u = DirectoryUri::parse(
                &format!("user{i:07}@{host}"),
                UriLookupPolicy::CaseSensitive,
            )
            .expect("uri");
            (u, r.clone())
        })
        .collect()
}

async fn full_sync(n: usize) {
    let (hub, hub_addr, _) = edge("HQ", Role::Hub, None).await;
    hub.advertise(uris(n, "hq.example.com"));
    let before = hub.stats().bytes_out;
    let start = Instant::now();
    let (spoke, _, mut rx) = edge("BR", Role::Spoke, Some(&hub_addr)).await;
    let mut got = 0;
    while got < n {
        let (_, k) = rx.recv().await.expect("sink open");
        got += k;
    }
    let elapsed = start.elapsed();
    let bytes = hub.stats().bytes_out - before;
    println!(
        "full sync hub->spoke: {n} URIs in {:.3} s ({:.0} URIs/s), {:.1} MB on the wire ({:.1} bytes/URI)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64
    );
    spoke.shutdown(Duration::from_secs(1)).await;
    hub.shutdown(Duration::from_secs(1)).await;
}

/// The full sync as the daemon runs it: both edges through `Service::launch` (TLS + password,
/// self-signed identities), the dial plan's learned table, and the spoke's store in the loop:
/// timed until the spoke has every record in its table and written to disk.
async fn full_sync_launched(n: usize) {
    use dialplan::{DuplicatePolicy, LearnedTable};
    use ils::auth::AuthMode;
    let dir = tempfile::tempdir().expect("dir");
    let launch = |id: &str, role, registrar: Option<String>| {
        let mut s = ils::Setup::new(
            ClusterId::new(id).expect("id"),
            format!("{}.example.com", id.to_lowercase()),
            role,
            dir.path().join(id),
        );
        s.route_strings = vec![route(id)];
        s.auth = AuthMode::TlsPassword;
        s.password = Some("bench".to_owned());
        s.registrar = registrar;
        let table = Arc::new(LearnedTable::new(
            n + 1,
            DuplicatePolicy::FirstLearned,
            UriLookupPolicy::CaseSensitive,
        ));
        async move {
            let service = ils::Service::launch(s, table.clone())
                .await
                .expect("launch");
            (service, table)
        }
    };
    let (hub, _) = launch("HQ", Role::Hub, None).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = hub.serve_tls(listener).expect("serve");
    hub.advertise(uris(n, "hq.example.com"));
    // Let the hub write its own records first: that is not part of the sync.
    while hub.stats().records_persisted < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = hub.stats().bytes_out;
    let start = Instant::now();
    let (spoke, table) = launch("BR", Role::Spoke, Some(addr.to_string())).await;
    let launched = start.elapsed();
    let mut in_table = None;
    loop {
        let st = spoke.stats();
        if in_table.is_none() && table.len() >= n {
            in_table = Some(start.elapsed());
        }
        if st.records_persisted >= n as u64 {
            let elapsed = start.elapsed();
            let bytes = hub.stats().bytes_out - before;
            println!(
                "full sync hub->spoke, launched, TLS + password, store on: {n} URIs in the table after {:.3} s, on disk after {:.3} s ({} commits, launch {:.3} s), {:.1} MB on the wire",
                in_table.unwrap_or(elapsed).as_secs_f64(),
                elapsed.as_secs_f64(),
                st.commits,
                launched.as_secs_f64(),
                bytes as f64 / 1e6,
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    spoke.shutdown(Duration::from_secs(1)).await;
    hub.shutdown(Duration::from_secs(1)).await;
}

async fn propagation(rounds: usize) {
    let (h1, h1_addr, _) = edge("H1", Role::Hub, None).await;
    let (h2, h2_addr, _) = edge("H2", Role::Hub, Some(&h1_addr)).await;
    let (sp, _, mut rx) = edge("S2", Role::Spoke, Some(&h2_addr)).await;
    // Wait until the chain is up: one record through it.
    let mut set = uris(1, "h1.example.com");
    h1.advertise(set.clone());
    rx.recv().await.expect("sink open");
    let mut delays = Vec::new();
    for i in 0..rounds {
        set.push(uris(i + 2, "h1.example.com").pop().expect("one"));
        let start = Instant::now();
        h1.advertise(set.clone());
        let (at, _) = rx.recv().await.expect("sink open");
        delays.push(at.duration_since(start));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "propagation hub->hub->spoke over loopback TCP: median {:.3} ms, p90 {:.3} ms, max {:.3} ms ({rounds} changes)",
        p(0.5),
        p(0.9),
        p(1.0)
    );
    for s in [&sp, &h2, &h1] {
        s.shutdown(Duration::from_secs(1)).await;
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        propagation(50).await;
        for n in sizes {
            full_sync(n).await;
            full_sync_launched(n).await;
        }
    });
}
