//! The three authentication methods, and every refusal with its specific code.

use std::time::Duration;

use dialplan::Role;
use ils::auth::{AuthMode, Identity, ThrottleConfig, TrustStore, tls};
use ils::proto::codec::{self, FrameDecoder};
use ils::proto::wire::{Hello, WireRole};
use ils::proto::{Frame, RefuseReason};
use rcgen::ExtendedKeyUsagePurpose;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// The lab of LAB.md: both edges `tls-password`, one password, self-signed identities made
/// on first start, the spoke's registrar the hub's TLS port. No set-up at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_tls_password_with_self_signed_identities_needs_no_set_up() {
    let dir = tempfile::tempdir().expect("dir");
    let hq = launch(
        setup(
            "HQ",
            Role::Hub,
            &dir.path().join("hq"),
            AuthMode::TlsPassword,
        ),
        any_port(),
    )
    .await;
    let br = launch(
        spoke_of(&hq, &dir.path().join("br"), AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    hq.service.advertise(records("HQ", &["alice"]));
    br.service.advertise(records("BR", &["bob"]));
    eventually("BR learns alice", || br.table.contains(&uri("alice", "HQ"))).await;
    eventually("HQ learns bob", || hq.table.contains(&uri("bob", "BR"))).await;
    assert!(dir.path().join("hq").join(Identity::CERT_FILE).exists());
    assert!(dir.path().join("br").join(Identity::KEY_FILE).exists());
    assert!(hq.service.stats().auth_failures.is_empty());
    br.stop().await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_on_the_password_port_inside_tls_and_over_plain_tcp_with_the_opt_in() {
    for plain in [false, true] {
        let dir = tempfile::tempdir().expect("dir");
        let mut h = setup("HQ", Role::Hub, &dir.path().join("hq"), AuthMode::Password);
        h.allow_plaintext_password = plain;
        let hq = launch(h, any_port()).await;
        let mut s = setup(
            "BR",
            Role::Spoke,
            &dir.path().join("br"),
            AuthMode::Password,
        );
        s.allow_plaintext_password = plain;
        s.registrar = hq.password.map(|a| a.to_string());
        let br = launch(s, any_port()).await;
        hq.service.advertise(records("HQ", &["alice"]));
        eventually("BR learns alice", || br.table.contains(&uri("alice", "HQ"))).await;
        br.stop().await;
        hq.stop().await;
    }
}

/// TLS with cross-imported (pinned) certificates, and TLS with a common CA for a peer the
/// peer vector knows after one TLS + password join (the seed's bootstrap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_pinned_certificates_and_with_a_common_ca_after_the_bootstrap() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let hq_id = cert_files(d, "hq", &name("HQ"), &BOTH, None, None);
    let br_id = cert_files(d, "br", &name("BR"), &BOTH, None, None);
    let mut h = setup("HQ", Role::Hub, &d.join("hq"), AuthMode::Tls);
    h.identity = Some(hq_id.clone());
    h.trusted_certificates = vec![br_id.0.clone()];
    let hq = launch(h, any_port()).await;
    let mut s = spoke_of(&hq, &d.join("br"), AuthMode::Tls);
    s.identity = Some(br_id);
    s.trusted_certificates = vec![hq_id.0.clone()];
    let br = launch(s, any_port()).await;
    hq.service.advertise(records("HQ", &["alice"]));
    eventually("BR learns alice (pinned)", || {
        br.table.contains(&uri("alice", "HQ"))
    })
    .await;
    br.stop().await;
    hq.stop().await;

    // Common CA: a CA-signed unknown spoke needs TLS + password once; then TLS alone.
    let ca = Ca::new(d, "UCCOLLAB-CA");
    let hq_id = cert_files(d, "hq-ca", &name("HQ"), &BOTH, None, Some(&ca));
    let br_id = cert_files(d, "br-ca", &name("BR"), &BOTH, None, Some(&ca));
    let run = |mode, hq_dir: &str, br_dir: &str| {
        let mut h = setup("HQ", Role::Hub, &d.join(hq_dir), mode);
        h.identity = Some(hq_id.clone());
        h.trusted_cas = vec![ca.file.clone()];
        let mut s = setup("BR", Role::Spoke, &d.join(br_dir), mode);
        s.identity = Some(br_id.clone());
        s.trusted_cas = vec![ca.file.clone()];
        (h, s)
    };
    // TLS alone first: the hub does not know BR yet.
    let (h, mut s) = run(AuthMode::Tls, "hq-ca", "br-ca");
    let hq = launch(h, any_port()).await;
    s.registrar = Some(hq.tls.to_string());
    let br = launch(s, any_port()).await;
    eventually("unknown CA-signed peer refused", || {
        hq.refused("unknown_peer") > 0
    })
    .await;
    br.stop().await;
    let addr = hq.tls;
    hq.stop().await;
    // TLS + password once: admitted, and the hub's peer vector now names BR.
    let (h, mut s) = run(AuthMode::TlsPassword, "hq-ca", "br-ca");
    let hq = launch(h, addr).await;
    s.registrar = Some(hq.tls.to_string());
    let br = launch(s, any_port()).await;
    // Both ends: the acceptor is up when it sends its proof, the dialer only once it has
    // verified it; a dialer stopped before that never authenticated the hub, so it rightly
    // keeps no row for it and would refuse it in mode `tls` (`unknown_peer`).
    eventually("BR up with TLS + password", || {
        hq.linked("BR") && br.linked("HQ")
    })
    .await;
    br.stop().await;
    hq.stop().await;
    // TLS alone now works: the restarted hub knows BR's name from its stored peer vector.
    let (h, mut s) = run(AuthMode::Tls, "hq-ca", "br-ca");
    let hq = launch(h, addr).await;
    s.registrar = Some(hq.tls.to_string());
    let br = launch(s, any_port()).await;
    hq.service.advertise(records("HQ", &["carol"]));
    eventually("BR learns carol with TLS alone", || {
        br.table.contains(&uri("carol", "HQ"))
    })
    .await;
    br.stop().await;
    hq.stop().await;
}

/// The lab's self-signed bootstrap: after one TLS + password join both edges pinned each
/// other's certificate, and after a restart in mode `tls` they still connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_peers_pinned_by_the_password_connect_with_tls_alone_after_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (hq_dir, br_dir) = (dir.path().join("hq"), dir.path().join("br"));
    let hq = launch(
        setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    let br = launch(spoke_of(&hq, &br_dir, AuthMode::TlsPassword), any_port()).await;
    eventually("joined", || hq.linked("BR") && br.linked("HQ")).await;
    // Give both ends a moment to have their peer vector (with the pin) written.
    br.stop().await;
    let addr = hq.tls;
    hq.stop().await;
    let hq = launch(setup("HQ", Role::Hub, &hq_dir, AuthMode::Tls), addr).await;
    let br = launch(spoke_of(&hq, &br_dir, AuthMode::Tls), any_port()).await;
    hq.service.advertise(records("HQ", &["alice"]));
    eventually("BR learns alice with TLS alone", || {
        br.table.contains(&uri("alice", "HQ"))
    })
    .await;
    assert!(
        hq.service.stats().auth_failures.is_empty(),
        "{:?}",
        hq.service.stats().auth_failures
    );
    br.stop().await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_refusals_are_counted_by_their_specific_code() {
    use ExtendedKeyUsagePurpose::ServerAuth;
    let cases: [(&str, &[ExtendedKeyUsagePurpose], Option<_>, &str, bool); 4] = [
        ("missing_eku", &[ServerAuth], None, "br.example.com", true),
        ("name_mismatch", &BOTH, None, "other.example.com", true),
        (
            "expired_certificate",
            &BOTH,
            Some((
                rcgen::date_time_ymd(2020, 1, 1),
                rcgen::date_time_ymd(2021, 1, 1),
            )),
            "br.example.com",
            true,
        ),
        (
            "untrusted_certificate",
            &BOTH,
            None,
            "br.example.com",
            false,
        ),
    ];
    for (code, ekus, validity, cert_name, pinned) in cases {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let br_cert = cert_files(d, "br", cert_name, ekus, validity, None);
        let trusted = if pinned {
            br_cert.clone()
        } else {
            cert_files(d, "other", "br.example.com", &BOTH, None, None)
        };
        let hq_id = cert_files(d, "hq", &name("HQ"), &BOTH, None, None);
        let mut h = setup("HQ", Role::Hub, &d.join("hq"), AuthMode::Tls);
        h.identity = Some(hq_id.clone());
        h.trusted_certificates = vec![trusted.0];
        let hq = launch(h, any_port()).await;
        let mut s = spoke_of(&hq, &d.join("br"), AuthMode::Tls);
        s.identity = Some(br_cert);
        s.trusted_certificates = vec![hq_id.0];
        let br = launch(s, any_port()).await;
        eventually(code, || hq.refused(code) > 0).await;
        assert!(!hq.linked("BR"));
        let all = hq.service.stats().auth_failures;
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [code], "{all:?}");
        br.stop().await;
        hq.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_as_such_on_both_sides() {
    let dir = tempfile::tempdir().expect("dir");
    let hq = launch(
        setup(
            "HQ",
            Role::Hub,
            &dir.path().join("hq"),
            AuthMode::TlsPassword,
        ),
        any_port(),
    )
    .await;
    let mut s = spoke_of(&hq, &dir.path().join("br"), AuthMode::TlsPassword);
    s.password = Some("a guess".to_owned());
    let br = launch(s, any_port()).await;
    eventually("wrong password counted", || {
        hq.refused("wrong_password") > 0
    })
    .await;
    eventually("BR told why", || {
        br.service
            .stats()
            .node
            .auth_refused_by_peer
            .contains_key("wrong_password")
    })
    .await;
    assert!(br.table.is_empty() && !hq.linked("BR"));
    br.stop().await;
    hq.stop().await;
}

/// A spoke refused for its password retries soon: once the hub is fixed (here: restarted with
/// the spoke's password on the same address) the spoke joins within seconds, not after the
/// longest backoff, and without restarting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoke_refused_for_its_password_joins_soon_after_the_hub_is_fixed() {
    let dir = tempfile::tempdir().expect("dir");
    let hq_dir = dir.path().join("hq");
    let mut h = setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword);
    h.password = Some("the old password".to_owned());
    let hq = launch(h, any_port()).await;
    let br = launch(
        spoke_of(&hq, &dir.path().join("br"), AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    eventually("wrong password counted", || {
        hq.refused("wrong_password") > 0
    })
    .await;
    let addr = hq.tls;
    hq.stop().await;
    let hq = launch(setup("HQ", Role::Hub, &hq_dir, AuthMode::TlsPassword), addr).await;
    hq.service.advertise(records("HQ", &["alice"]));
    // The old schedule waited 30 s after any authentication refusal.
    eventually("BR joins the fixed hub", || {
        br.table.contains(&uri("alice", "HQ"))
    })
    .await;
    br.stop().await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_cluster_id_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let hq = launch(
        setup(
            "HQ",
            Role::Hub,
            &dir.path().join("hq"),
            AuthMode::TlsPassword,
        ),
        any_port(),
    )
    .await;
    let br = launch(
        spoke_of(&hq, &dir.path().join("br"), AuthMode::TlsPassword),
        any_port(),
    )
    .await;
    eventually("BR up", || hq.linked("BR")).await;
    let mut s = spoke_of(&hq, &dir.path().join("br2"), AuthMode::TlsPassword);
    s.cluster_name = "br-other.example.com".to_owned();
    let other = launch(s, any_port()).await;
    eventually("duplicate refused on both sides", || {
        hq.service
            .stats()
            .node
            .refused_by_us
            .contains_key("duplicate_cluster_id")
            && other
                .service
                .stats()
                .node
                .refused_by_peer
                .contains_key("duplicate_cluster_id")
    })
    .await;
    other.stop().await;
    br.stop().await;
    hq.stop().await;
}

/// A client speaking only protocol versions 2..=3 is refused with the versions named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_version_mismatch_is_refused_and_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let hq = launch(
        setup(
            "HQ",
            Role::Hub,
            &dir.path().join("hq"),
            AuthMode::TlsPassword,
        ),
        any_port(),
    )
    .await;
    let identity = Identity::self_signed("future.example.com").expect("identity");
    let connector = tls::connector(
        AuthMode::Password,
        &identity,
        std::sync::Arc::new(TrustStore::new()),
    )
    .expect("connector");
    let tcp = tokio::net::TcpStream::connect(hq.tls)
        .await
        .expect("connect");
    let mut stream = connector
        .connect(tls::server_name(None, hq.tls.ip()), tcp)
        .await
        .expect("tls");
    let hello = Hello {
        min_version: 2,
        max_version: 3,
        cluster_id: "FUTURE".into(),
        cluster_name: "future.example.com".into(),
        role: WireRole::Spoke as i32,
        nonce: vec![7; 32],
        ..Hello::default()
    };
    let mut buf = bytes::BytesMut::new();
    codec::encode(&Frame::Hello(hello), &mut buf);
    stream.write_all(&buf).await.expect("write");
    let mut inbuf = bytes::BytesMut::new();
    let dec = FrameDecoder::default();
    let refuse = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Some(f)) = dec.decode(&mut inbuf) {
                return f;
            }
            let n = stream.read_buf(&mut inbuf).await.expect("read");
            assert!(n > 0, "closed without a Refuse");
        }
    })
    .await
    .expect("answer in time");
    let Frame::Refuse(r) = refuse else {
        panic!("expected Refuse, got {refuse:?}");
    };
    assert_eq!(r.reason, RefuseReason::VersionMismatch as i32);
    assert!(r.detail.contains("the peer 2..=3"), "{}", r.detail);
    eventually("counted", || {
        hq.service
            .stats()
            .node
            .refused_by_us
            .contains_key("version_mismatch")
    })
    .await;
    hq.stop().await;
}

/// After `max_failures` refused certificates from one address, its next connections are
/// refused at once, without a TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_from_one_address_are_throttled() {
    let dir = tempfile::tempdir().expect("dir");
    let mut h = setup("HQ", Role::Hub, &dir.path().join("hq"), AuthMode::Tls);
    h.throttle = ThrottleConfig {
        max_failures: 3,
        window: Duration::from_secs(60),
        backoff: Duration::from_secs(60),
        max_tracked: 16,
    };
    let hq = launch(h, any_port()).await;
    let identity = Identity::self_signed("stranger.example.com").expect("identity");
    let connector = tls::connector(
        AuthMode::Password,
        &identity,
        std::sync::Arc::new(TrustStore::new()),
    )
    .expect("connector");
    for _ in 0..5 {
        let tcp = tokio::net::TcpStream::connect(hq.tls)
            .await
            .expect("connect");
        if let Ok(mut s) = connector
            .connect(tls::server_name(None, hq.tls.ip()), tcp)
            .await
        {
            // TLS 1.3: the server refuses the client certificate after the client's handshake.
            let mut b = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
        }
    }
    eventually("throttled", || hq.refused("throttled") >= 1).await;
    assert!(hq.refused("untrusted_certificate") >= 3);
    hq.stop().await;
}
