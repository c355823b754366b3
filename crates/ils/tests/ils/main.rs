//! The tokio driver over real loopback sockets (127.0.0.1:0 only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, DirectoryUri, Role, RouteString, UriLookupPolicy};
use ils::proto::OpenAuthenticator;
use ils::{Config, MemorySink, PeerState, Service, driver::PlainTcp};
use tokio::net::TcpListener;

struct Edge {
    service: Service,
    sink: Arc<MemorySink>,
    addr: String,
}

async fn edge(id: &str, role: Role, registrar: Option<&str>) -> Edge {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut c = Config::new(
        ClusterId::new(id).expect("id"),
        format!("{}.example.com", id.to_lowercase()),
        role,
    );
    c.route_strings = vec![route(id)];
    c.registrar = registrar.map(str::to_owned);
    c.advertise_addrs = vec![addr.clone()];
    let sink = Arc::new(MemorySink::new());
    let service = Service::start(
        c,
        sink.clone(),
        Arc::new(OpenAuthenticator),
        Arc::new(PlainTcp::default()),
    )
    .expect("start");
    service.serve(listener).expect("serve");
    Edge {
        service,
        sink,
        addr,
    }
}

fn route(id: &str) -> RouteString {
    RouteString::new(&format!("{}.route", id.to_lowercase())).expect("route")
}

fn uri(s: &str) -> DirectoryUri {
    DirectoryUri::parse(s, UriLookupPolicy::CaseSensitive).expect("uri")
}

/// Waits until `f` holds, polling; fails after 5 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_hub_spoke_replicate_over_tcp_and_shut_down() {
    let h1 = edge("H1", Role::Hub, None).await;
    let h2 = edge("H2", Role::Hub, Some(&h1.addr)).await;
    let br = edge("BR", Role::Spoke, Some(&h2.addr)).await;
    h1.service
        .advertise([(uri("alice@h1.example.com"), route("H1"))]);
    eventually("BR learns alice from H1 via H2", || br.sink.len() == 1).await;
    br.service
        .advertise([(uri("bob@br.example.com"), route("BR"))]);
    eventually("H1 learns bob via H2", || h1.sink.len() == 1).await;
    let peers = br.service.peers();
    let h2p = peers
        .iter()
        .find(|p| p.cluster_id.as_str() == "H2")
        .expect("H2 known");
    assert!(h2p.linked && h2p.state == PeerState::Up);
    assert!(
        peers.iter().any(|p| p.cluster_id.as_str() == "H1"),
        "H1 known from the peer vector"
    );
    // Removal reaches the spoke.
    h1.service.advertise([]);
    eventually("BR drops alice", || br.sink.is_empty()).await;
    let stats = br.service.stats();
    assert!(stats.bytes_in > 0 && stats.bytes_out > 0);
    for e in [&br, &h2, &h1] {
        e.service.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cluster_id_is_refused_over_tcp() {
    let hq = edge("HQ", Role::Hub, None).await;
    let br = edge("BR", Role::Spoke, Some(&hq.addr)).await;
    eventually("BR up", || hq.service.peers().iter().any(|p| p.linked)).await;
    // A second cluster using the ID BR under another name.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut c = Config::new(
        ClusterId::new("BR").expect("id"),
        "br-other.example.com",
        Role::Spoke,
    );
    c.registrar = Some(hq.addr.clone());
    let other = Service::start(
        c,
        Arc::new(MemorySink::new()),
        Arc::new(OpenAuthenticator),
        Arc::new(PlainTcp::default()),
    )
    .expect("start");
    other.serve(listener).expect("serve");
    eventually("refusal counted on both sides", || {
        other
            .stats()
            .node
            .refused_by_peer
            .contains_key("duplicate_cluster_id")
            && hq
                .service
                .stats()
                .node
                .refused_by_us
                .contains_key("duplicate_cluster_id")
    })
    .await;
    other.shutdown(Duration::from_secs(1)).await;
    br.service.shutdown(Duration::from_secs(1)).await;
    hq.service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_an_oversized_frame_is_cut_off_and_others_carry_on() {
    use tokio::io::AsyncWriteExt;
    let hq = edge("HQ", Role::Hub, None).await;
    let br = edge("BR", Role::Spoke, Some(&hq.addr)).await;
    let mut bad = tokio::net::TcpStream::connect(&hq.addr)
        .await
        .expect("connect");
    bad.write_all(&(64u32 << 20).to_be_bytes())
        .await
        .expect("write");
    hq.service
        .advertise([(uri("alice@hq.example.com"), route("HQ"))]);
    eventually("BR still learns", || br.sink.len() == 1).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut bad, &mut buf),
    )
    .await;
    assert!(read.is_ok(), "the hostile connection is closed by the hub");
    br.service.shutdown(Duration::from_secs(1)).await;
    hq.service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoke_fills_the_dial_plans_learned_table() {
    use dialplan::{DuplicatePolicy, LearnedTable};
    let hq = edge("HQ", Role::Hub, None).await;
    let table = Arc::new(LearnedTable::new(
        100_000,
        DuplicatePolicy::FirstLearned,
        UriLookupPolicy::CaseSensitive,
    ));
    let mut c = Config::new(
        ClusterId::new("BR").expect("id"),
        "br.example.com",
        Role::Spoke,
    );
    c.registrar = Some(hq.addr.clone());
    let br = Service::start(
        c,
        table.clone(),
        Arc::new(OpenAuthenticator),
        Arc::new(PlainTcp::default()),
    )
    .expect("start");
    hq.service
        .advertise([(uri("alice@hq.example.com"), route("HQ"))]);
    eventually("alice in BR's learned table", || table.len() == 1).await;
    let entry = table.get(&uri("alice@hq.example.com")).expect("learned");
    assert!(format!("{entry:?}").contains("hq.route"), "{entry:?}");
    br.shutdown(Duration::from_secs(1)).await;
    hq.service.shutdown(Duration::from_secs(1)).await;
}
