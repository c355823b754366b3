//! End-to-end scenarios.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sip_proxy::proxy::{Event, FailReason};
use sip_proxy::transaction::{Peer, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

use crate::harness::*;

#[tokio::test]
async fn udp_call_reaches_the_trunk_and_the_answer_comes_back() {
    let trunk = udp_trunk(200).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uac = UdpUac::new().await;
    uac.send(
        edge,
        request("INVITE", "+14085550100", uac.addr(), "UDP", "z9hG4bKu1"),
    )
    .await;
    assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    uac.send(
        edge,
        request("INVITE", "unknown", uac.addr(), "UDP", "z9hG4bKu2"),
    )
    .await;
    assert_eq!(uac.statuses_until_final().await, [100, 404]);
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn tcp_call_through_a_tcp_trunk_reuses_connections() {
    let trunk = tcp_trunk(486).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Tcp).unwrap();
    let mut stream = tcp_connect(edge).await;
    let me = stream.local_addr().unwrap();
    for (i, expect) in [[100, 180, 486], [100, 180, 486]].into_iter().enumerate() {
        let req = request("INVITE", "+14085550100", me, "TCP", &format!("z9hG4bKt{i}"));
        stream.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(stream_statuses_until_final(&mut stream).await, expect);
    }
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn tls_client_call_reaches_a_udp_trunk() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let trunk = udp_trunk(200).await;
    let proxy = start_proxy(
        vec![trunk],
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))),
    )
    .await;
    let edge = proxy.handle.local_addr(Transport::Tls).unwrap();
    let tcp = tcp_connect(edge).await;
    let me = tcp.local_addr().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = ServerName::IpAddress(edge.ip().into());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = request("INVITE", "+14085550100", me, "TLS", "z9hG4bKtls1");
    tls.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(stream_statuses_until_final(&mut tls).await, [100, 180, 200]);
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_silent_destination_fails_over_to_the_next() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = Peer {
        transport: Transport::Udp,
        addr: silent.local_addr().unwrap(),
    };
    let trunk = udp_trunk(200).await;
    let mut proxy = start_proxy(vec![dead, trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uac = UdpUac::new().await;
    uac.send(
        edge,
        request("INVITE", "+14085550100", uac.addr(), "UDP", "z9hG4bKf1"),
    )
    .await;
    assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    let event = tokio::time::timeout(WAIT, proxy.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        Event::DestinationFailed {
            peer: dead,
            reason: FailReason::Timeout
        }
    );
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_refused_tcp_destination_fails_over_at_once() {
    // Bind then drop a listener to get a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = Peer {
        transport: Transport::Tcp,
        addr: closed,
    };
    let trunk = udp_trunk(200).await;
    let mut proxy = start_proxy(vec![dead, trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uac = UdpUac::new().await;
    uac.send(
        edge,
        request("INVITE", "+14085550100", uac.addr(), "UDP", "z9hG4bKf2"),
    )
    .await;
    assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    let event = tokio::time::timeout(WAIT, proxy.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        Event::DestinationFailed {
            peer: dead,
            reason: FailReason::Transport
        }
    );
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn malformed_messages_get_400_and_calls_keep_completing() {
    let trunk = udp_trunk(200).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uac = UdpUac::new().await;
    for i in 0..20 {
        uac.send(edge, format!("garbage {i}\r\n\r\n")).await;
        let bad = request(
            "INVITE",
            "+14085550100",
            uac.addr(),
            "UDP",
            &format!("z9hG4bKbad{i}"),
        )
        .replace("CSeq: 1 INVITE", "CSeq: x INVITE");
        uac.send(edge, bad).await;
        assert_eq!(uac.statuses_until_final().await, [400]);
    }
    uac.send(
        edge,
        request("INVITE", "+14085550100", uac.addr(), "UDP", "z9hG4bKgood"),
    )
    .await;
    assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_panic_while_handling_one_request_leaves_the_listener_serving() {
    let trunk = udp_trunk(200).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let (bad, uac) = (UdpUac::new().await, UdpUac::new().await);
    for i in 0..3 {
        bad.send(
            edge,
            request(
                "MESSAGE",
                "panic",
                bad.addr(),
                "UDP",
                &format!("z9hG4bKp{i}"),
            ),
        )
        .await;
        uac.send(
            edge,
            request(
                "INVITE",
                "+14085550100",
                uac.addr(),
                "UDP",
                &format!("z9hG4bKok{i}"),
            ),
        )
        .await;
        assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    }
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn options_ping_reports_the_answer() {
    let trunk = udp_trunk(200).await;
    let mut proxy = start_proxy(vec![trunk], None).await;
    proxy.handle.ping(trunk);
    let event = tokio::time::timeout(WAIT, proxy.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        Event::PingAnswered {
            peer: trunk,
            status: 200
        }
    );
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reuseport_sockets_share_one_port() {
    let sockets = sip_proxy::transport::bind_udp("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    assert_eq!(
        sockets[0].local_addr().unwrap(),
        sockets[1].local_addr().unwrap()
    );
}

#[tokio::test]
async fn monitor_pings_and_marks_a_silent_destination_down() {
    use sip_proxy::trunk::{DestinationSpec, Health, TrunkSpec, TrunkTable, monitor};
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = Peer {
        transport: Transport::Udp,
        addr: silent.local_addr().unwrap(),
    };
    let live = udp_trunk(200).await;
    let proxy = start_proxy(vec![], None).await;
    let table = Arc::new(TrunkTable::new());
    table.set(
        "hq",
        TrunkSpec {
            destinations: vec![
                DestinationSpec::Addr(dead.addr),
                DestinationSpec::Addr(live.addr),
            ],
            transport: Transport::Udp,
            ping_interval: Some(Duration::from_secs(30)),
        },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(monitor::run(
        proxy.handle.clone(),
        table.clone(),
        proxy.events,
        None,
        monitor::MonitorConfig::default(),
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while (table.health(dead), table.health(live)) != (Health::Down, Health::Up) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "states: {:?}",
            table.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(table.destinations("hq"), [live]);
    stop.cancel();
    task.await.unwrap();
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_lets_a_call_in_progress_finish_and_refuses_new_ones() {
    let trunk = udp_trunk_after(200, Duration::from_millis(300)).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uac = UdpUac::new().await;
    uac.send(
        edge,
        request("INVITE", "+14085550100", uac.addr(), "UDP", "z9hG4bKs1"),
    )
    .await;
    let mut buf = vec![0u8; 65536];
    for _ in 0..2 {
        // 100 Trying, then 180 Ringing: the call is in progress.
        tokio::time::timeout(WAIT, uac.socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    let shutdown = tokio::spawn(proxy.handle.clone().shutdown(WAIT));
    let late = UdpUac::new().await;
    late.send(
        edge,
        request("INVITE", "+14085550100", late.addr(), "UDP", "z9hG4bKs2"),
    )
    .await;
    assert_eq!(late.statuses_until_final().await, [100, 503]);
    assert_eq!(uac.statuses_until_final().await, [200]);
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
}

#[tokio::test]
async fn requests_sent_while_connecting_share_one_connection() {
    let trunk = tcp_trunk(200).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Udp).unwrap();
    let uacs = [
        UdpUac::new().await,
        UdpUac::new().await,
        UdpUac::new().await,
        UdpUac::new().await,
    ];
    for (i, uac) in uacs.iter().enumerate() {
        let req = request(
            "INVITE",
            "+14085550100",
            uac.addr(),
            "UDP",
            &format!("z9hG4bKburst{i}"),
        );
        uac.send(edge, req).await;
    }
    for uac in &uacs {
        assert_eq!(uac.statuses_until_final().await, [100, 180, 200]);
    }
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_burst_on_one_tcp_connection_is_answered_in_full() {
    // Every INVITE of the burst gets a final response on the same connection: the connection
    // writes what is queued before reading more, so nothing is dropped. (Which final depends on
    // how fast the trunk keeps up with the test's 300 ms response timeout: its 486, or 503.)
    const CALLS: usize = 1_000;
    let trunk = udp_trunk(486).await;
    let proxy = start_proxy(vec![trunk], None).await;
    let edge = proxy.handle.local_addr(Transport::Tcp).unwrap();
    let stream = tcp_connect(edge).await;
    let me = stream.local_addr().unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let burst: String = (0..CALLS)
        .map(|i| request("INVITE", "+14085550100", me, "TCP", &format!("z9hG4bKb{i}")))
        .collect();
    let writer = tokio::spawn(async move {
        wr.write_all(burst.as_bytes()).await.unwrap();
        wr
    });
    let framer = sip_proxy::message::Framer::default();
    let mut buf = bytes::BytesMut::new();
    let mut finals = std::collections::HashSet::new();
    loop {
        while let Some(msg) = framer.decode(&mut buf).unwrap() {
            let status = msg.status().unwrap();
            if status >= 200 {
                assert!(matches!(status, 486 | 503), "unexpected {status}");
                assert!(finals.insert(msg.call_id().unwrap().to_vec()), "two finals");
            }
        }
        if finals.len() == CALLS {
            break;
        }
        let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_buf(&mut rd, &mut buf))
            .await
            .unwrap_or_else(|_| panic!("stalled after {} final responses", finals.len()))
            .unwrap();
        assert!(
            n > 0,
            "connection closed after {} final responses",
            finals.len()
        );
    }
    let _wr = writer.await.unwrap();
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed() {
    let proxy = start_proxy_with(
        vec![udp_trunk(200).await],
        None,
        sip_proxy::transport::DriverConfig {
            idle_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await;
    let edge = proxy.handle.local_addr(Transport::Tcp).unwrap();
    let mut stream = tcp_connect(edge).await;
    let me = stream.local_addr().unwrap();
    let req = request("OPTIONS", "+14085550100", me, "TCP", "z9hG4bKidle");
    stream.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(stream_statuses_until_final(&mut stream).await, [200]);
    // Then nothing either way: the proxy closes the connection (idle timeout, at most twice
    // the setting); WAIT only turns a hang into a failure.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    )
    .await
    .expect("the proxy closes an idle connection")
    .unwrap();
    assert_eq!(n, 0);
    proxy.handle.shutdown(Duration::from_secs(1)).await;
}
