//! The three authentication methods and each refusal, over real loopback sockets with
//! certificates made by rcgen at test time.

mod support;

use std::sync::Arc;

use ils::auth::{
    AuthError, AuthMode, Authenticator, Eku, FailureThrottle, Identity, ThrottleConfig, Transport,
    TrustBasis, TrustStore, check_peer_certificate,
};
use rcgen::ExtendedKeyUsagePurpose;
use support::{Ca, Edge, Outcome, PASSWORD, connect, expired_window, pair, serve_one, spawn_relay};
use tokio::net::TcpListener;

const HQ: &str = "hq.example.com";
const BR: &str = "br.example.com";

fn self_signed_edge(id: &str, name: &str, mode: AuthMode, password: Option<&str>) -> Edge {
    let identity = Identity::self_signed(name).expect("identity");
    Edge::new(
        id,
        name,
        mode,
        identity,
        Arc::new(TrustStore::new()),
        password,
    )
}

#[tokio::test]
async fn password_over_tls_succeeds_and_pins_both_certificates() {
    let hq = self_signed_edge("HQ", HQ, AuthMode::Password, Some(PASSWORD));
    let br = self_signed_edge("BR", BR, AuthMode::Password, Some(PASSWORD));
    let (s, c) = pair(&hq, &br, None).await;
    for o in [&s, &c] {
        assert!(
            matches!(
                o,
                Outcome::Accepted {
                    pinned: Some(_),
                    password: true
                }
            ),
            "{o:?}"
        );
    }
    assert_eq!(hq.auth.trust().pinned_count(), 1);
    assert_eq!(br.auth.trust().pinned_count(), 1);
}

#[tokio::test]
async fn wrong_password_is_refused_as_such() {
    let hq = self_signed_edge("HQ", HQ, AuthMode::Password, Some(PASSWORD));
    let br = self_signed_edge("BR", BR, AuthMode::Password, Some("Tr0ub4dor&3"));
    let (s, c) = pair(&hq, &br, None).await;
    let err = s.refused();
    assert!(matches!(err, AuthError::WrongPassword), "{err:?}");
    assert_eq!(err.code(), "wrong_password");
    assert!(
        matches!(c, Outcome::RefusedByPeer(ref code) if code == "wrong_password"),
        "{c:?}"
    );
    assert_eq!(
        hq.auth.trust().pinned_count(),
        0,
        "nothing pinned on failure"
    );
}

#[tokio::test]
async fn bootstrap_password_then_tls_alone() {
    // First contact with the password: each edge pins the other's self-signed certificate.
    let hq_id = Identity::self_signed(HQ).expect("hq identity");
    let br_id = Identity::self_signed(BR).expect("br identity");
    let hq_trust = Arc::new(TrustStore::new());
    let br_trust = Arc::new(TrustStore::new());
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Password,
        hq_id.clone(),
        hq_trust.clone(),
        Some(PASSWORD),
    );
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Password,
        br_id.clone(),
        br_trust.clone(),
        Some(PASSWORD),
    );
    let (s, c) = pair(&hq, &br, None).await;
    assert!(s.is_accepted() && c.is_accepted(), "{s:?} {c:?}");

    // Later: TLS only, the peer vector knows the names, the pins vouch for the certificates.
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        hq_id.clone(),
        hq_trust.clone(),
        None,
    )
    .knows("BR", BR);
    let br = Edge::new("BR", BR, AuthMode::Tls, br_id, br_trust, None).knows("HQ", HQ);
    let (s, c) = pair(&hq, &br, Some(HQ)).await;
    for o in [&s, &c] {
        assert!(
            matches!(
                o,
                Outcome::Accepted {
                    pinned: None,
                    password: false
                }
            ),
            "{o:?}"
        );
    }

    // A third cluster that never proved the password is not trusted by TLS alone.
    let stranger = self_signed_edge("DR", "dr.example.com", AuthMode::Tls, None);
    stranger.auth.trust().pin(hq_id.certificate());
    let hq = Edge::new("HQ", HQ, AuthMode::Tls, hq_id, hq_trust, None);
    let (s, _) = pair(&hq, &stranger, None).await;
    assert!(
        matches!(s.refused(), AuthError::UntrustedCertificate { .. }),
        "{s:?}"
    );
}

#[tokio::test]
async fn tls_with_cross_imported_certificates() {
    // The seed's cross-import: each edge's certificate file copied into the other's trust dir.
    let dir = tempfile::tempdir().expect("tempdir");
    let (hq_dir, br_dir) = (dir.path().join("hq"), dir.path().join("br"));
    let hq_id = Identity::load_or_create(&hq_dir, HQ).expect("hq identity");
    let br_id = Identity::load_or_create(&br_dir, BR).expect("br identity");
    let (hq_trust_dir, br_trust_dir) = (dir.path().join("hq-trust"), dir.path().join("br-trust"));
    std::fs::create_dir_all(&hq_trust_dir).expect("mkdir");
    std::fs::create_dir_all(&br_trust_dir).expect("mkdir");
    std::fs::write(br_trust_dir.join("hq.pem"), hq_id.certificate_pem()).expect("export hq");
    std::fs::write(hq_trust_dir.join("br.pem"), br_id.certificate_pem()).expect("export br");
    let hq_trust = TrustStore::new();
    assert_eq!(hq_trust.pin_dir(&hq_trust_dir).expect("import"), 1);
    let br_trust = TrustStore::new();
    assert_eq!(br_trust.pin_dir(&br_trust_dir).expect("import"), 1);

    // The hub does not know the spoke yet: the pinned certificate must name what it claims.
    let hq = Edge::new("HQ", HQ, AuthMode::Tls, hq_id, Arc::new(hq_trust), None);
    let br = Edge::new("BR", BR, AuthMode::Tls, br_id, Arc::new(br_trust), None).knows("HQ", HQ);
    let (s, c) = pair(&hq, &br, Some(HQ)).await;
    assert!(s.is_accepted() && c.is_accepted(), "{s:?} {c:?}");
}

#[tokio::test]
async fn tls_with_common_ca_and_known_names() {
    let ca = Ca::new("UCCOLLAB-CA");
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    )
    .knows("BR", BR);
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        ca.good_leaf(BR),
        Arc::new(ca.trust()),
        None,
    )
    .knows("HQ", HQ);
    let (s, c) = pair(&hq, &br, Some(HQ)).await;
    assert!(s.is_accepted() && c.is_accepted(), "{s:?} {c:?}");
}

#[tokio::test]
async fn ca_signed_unknown_peer_needs_tls_plus_password_once() {
    let ca = Ca::new("UCCOLLAB-CA");
    let hq_id = ca.good_leaf(HQ);
    let br_id = ca.good_leaf(BR);
    // TLS alone: the hub's peer vector does not know BR.
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        hq_id.clone(),
        Arc::new(ca.trust()),
        None,
    );
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        br_id.clone(),
        Arc::new(ca.trust()),
        None,
    )
    .knows("HQ", HQ);
    let (s, _) = pair(&hq, &br, Some(HQ)).await;
    let err = s.refused();
    assert!(matches!(err, AuthError::UnknownPeer { .. }), "{err:?}");
    assert_eq!(err.code(), "unknown_peer");

    // TLS + password: accepted, and the certificate is CA-signed so nothing needs pinning.
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::TlsPassword,
        hq_id,
        Arc::new(ca.trust()),
        Some(PASSWORD),
    );
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::TlsPassword,
        br_id,
        Arc::new(ca.trust()),
        Some(PASSWORD),
    );
    let (s, c) = pair(&hq, &br, None).await;
    for o in [&s, &c] {
        assert!(
            matches!(
                o,
                Outcome::Accepted {
                    pinned: None,
                    password: true
                }
            ),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn untrusted_certificate_is_refused_during_the_handshake() {
    let ca = Ca::new("UCCOLLAB-CA");
    let other_ca = Ca::new("Someone else's CA");
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    )
    .knows("BR", BR);
    // BR trusts HQ's CA, but its own certificate comes from a CA that HQ does not trust.
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        other_ca.good_leaf(BR),
        Arc::new(ca.trust()),
        None,
    );
    let (s, c) = pair(&hq, &br, Some(HQ)).await;
    let err = s.refused();
    assert!(
        matches!(err, AuthError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "untrusted_certificate");
    assert!(err.to_string().contains(BR), "{err}");
    assert!(matches!(c, Outcome::RefusedByPeer(_)), "{c:?}");

    // With no CA and no pin at all, the message says so.
    let bare = TrustStore::new();
    let e = check_peer_certificate(ca.good_leaf(BR).chain(), BR, &bare).unwrap_err();
    assert!(e.to_string().contains("no trusted CA"), "{e}");
}

#[tokio::test]
async fn missing_client_auth_eku_is_named() {
    let ca = Ca::new("UCCOLLAB-CA");
    let server_only = ca.leaf(BR, &[ExtendedKeyUsagePurpose::ServerAuth], None);
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    )
    .knows("BR", BR);
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        server_only,
        Arc::new(ca.trust()),
        None,
    );
    let (s, _) = pair(&hq, &br, Some(HQ)).await;
    let err = s.refused();
    assert!(
        matches!(
            err,
            AuthError::MissingEku {
                missing: Eku::ClientAuth,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "missing_eku");
    assert!(err.to_string().contains("clientAuth"), "{err}");

    // The initiating side checks the server's certificate the same way (serverAuth missing).
    let client_only = ca.leaf(HQ, &[ExtendedKeyUsagePurpose::ClientAuth], None);
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        client_only,
        Arc::new(ca.trust()),
        None,
    );
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        ca.good_leaf(BR),
        Arc::new(ca.trust()),
        None,
    );
    let (_, c) = pair(&hq, &br, Some(HQ)).await;
    assert!(
        matches!(
            c.refused(),
            AuthError::MissingEku {
                missing: Eku::ServerAuth,
                ..
            }
        ),
        "{c:?}"
    );
}

#[tokio::test]
async fn name_mismatch_reports_expected_and_presented() {
    let ca = Ca::new("UCCOLLAB-CA");
    // The peer vector says cluster BR is br.example.com; it presents a certificate for dr.
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    )
    .knows("BR", BR);
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        ca.good_leaf("dr.example.com"),
        Arc::new(ca.trust()),
        None,
    )
    .knows("HQ", HQ);
    let (s, c) = pair(&hq, &br, Some(HQ)).await;
    match s.refused() {
        AuthError::NameMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, BR);
            assert_eq!(presented, &vec!["dr.example.com".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c, Outcome::RefusedByPeer(ref code) if code == "name_mismatch"),
        "{c:?}"
    );

    // The initiator that dials a known name checks it during the handshake.
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf("wrong.example.com"),
        Arc::new(ca.trust()),
        None,
    );
    let br = Edge::new(
        "BR",
        BR,
        AuthMode::Tls,
        ca.good_leaf(BR),
        Arc::new(ca.trust()),
        None,
    );
    let (_, c) = pair(&hq, &br, Some(HQ)).await;
    assert!(
        matches!(c.refused(), AuthError::NameMismatch { .. }),
        "{c:?}"
    );
}

#[tokio::test]
async fn expired_certificates_are_refused() {
    let ca = Ca::new("UCCOLLAB-CA");
    let expired = ca.leaf(BR, &support::BOTH_EKUS, Some(expired_window()));
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    )
    .knows("BR", BR);
    let br = Edge::new("BR", BR, AuthMode::Tls, expired, Arc::new(ca.trust()), None);
    let (s, _) = pair(&hq, &br, Some(HQ)).await;
    let err = s.refused();
    assert!(
        matches!(err, AuthError::ExpiredCertificate { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "expired_certificate");

    // A pinned certificate expires too (the seed: re-import after expiry).
    let old = support::self_signed(BR, &support::BOTH_EKUS, Some(expired_window()));
    let trust = TrustStore::new();
    trust.pin(old.certificate());
    let e = check_peer_certificate(old.chain(), BR, &trust).unwrap_err();
    assert!(matches!(e, AuthError::ExpiredCertificate { .. }), "{e:?}");
}

#[tokio::test]
async fn plaintext_password_needs_the_explicit_opt_in() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut hq = self_signed_edge("HQ", HQ, AuthMode::Password, Some(PASSWORD));
    let mut br = self_signed_edge("BR", BR, AuthMode::Password, Some(PASSWORD));
    hq.transport = Transport::Plain;
    br.transport = Transport::Plain;
    // Without the opt-in neither side speaks.
    let (s, c) = tokio::join!(serve_one(&listener, &hq, None), connect(addr, &br, None));
    assert!(
        matches!(s.refused(), AuthError::PlaintextPasswordRefused),
        "{s:?}"
    );
    assert!(
        matches!(c.refused(), AuthError::PlaintextPasswordRefused),
        "{c:?}"
    );
    assert_eq!(s.refused().code(), "plaintext_password_refused");

    // With it, the password still works (no channel binding to check).
    let opt_in = |id: &str, name: &str| {
        let auth = Authenticator::new(
            AuthMode::Password,
            Identity::self_signed(name).expect("identity"),
            Arc::new(TrustStore::new()),
            Some(PASSWORD),
            true,
        )
        .expect("auth");
        Edge {
            auth,
            ..self_signed_edge(id, name, AuthMode::Password, Some(PASSWORD))
        }
    };
    let mut hq = opt_in("HQ", HQ);
    let mut br = opt_in("BR", BR);
    hq.transport = Transport::Plain;
    br.transport = Transport::Plain;
    let (s, c) = tokio::join!(serve_one(&listener, &hq, None), connect(addr, &br, None));
    assert!(s.is_accepted() && c.is_accepted(), "{s:?} {c:?}");
    // A TLS-only edge refuses plain TCP whatever the opt-in says.
    let tls_only = self_signed_edge("DR", "dr.example.com", AuthMode::Tls, None);
    assert!(matches!(
        tls_only.auth.check_transport(Transport::Plain),
        Err(AuthError::NoCertificate {
            mode: AuthMode::Tls
        })
    ));
}

#[tokio::test]
async fn relay_with_its_own_certificate_fails_the_bound_proof() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let relay = spawn_relay(upstream).await;
    let hq = self_signed_edge("HQ", HQ, AuthMode::Password, Some(PASSWORD));
    let br = self_signed_edge("BR", BR, AuthMode::Password, Some(PASSWORD));
    let (s, c) = tokio::join!(serve_one(&listener, &hq, None), connect(relay, &br, None));
    let err = s.refused();
    assert!(matches!(err, AuthError::ChannelBindingMismatch), "{err:?}");
    assert_eq!(err.code(), "channel_binding_mismatch");
    assert!(!c.is_accepted(), "{c:?}");
    assert_eq!(
        hq.auth.trust().pinned_count(),
        0,
        "the relay's certificate is not pinned"
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hq = self_signed_edge("HQ", HQ, AuthMode::Password, Some(PASSWORD));
    let guesser = self_signed_edge("BR", BR, AuthMode::Password, Some("guess"));
    let mut throttle = FailureThrottle::new(ThrottleConfig {
        max_failures: 2,
        ..ThrottleConfig::default()
    });
    for _ in 0..2 {
        let (s, _) = tokio::join!(
            serve_one(&listener, &hq, Some(&mut throttle)),
            connect(addr, &guesser, None)
        );
        assert!(matches!(s.refused(), AuthError::WrongPassword), "{s:?}");
    }
    let (s, _) = tokio::join!(
        serve_one(&listener, &hq, Some(&mut throttle)),
        connect(addr, &guesser, None)
    );
    assert!(matches!(s.refused(), AuthError::Throttled { .. }), "{s:?}");
}

#[tokio::test]
async fn missing_client_certificate_is_named() {
    let ca = Ca::new("UCCOLLAB-CA");
    let hq = Edge::new(
        "HQ",
        HQ,
        AuthMode::Tls,
        ca.good_leaf(HQ),
        Arc::new(ca.trust()),
        None,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(ils::auth::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let client = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from(HQ).expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        // Say hello so that the server reaches its admission check.
        use tokio::io::AsyncWriteExt;
        let mut frame = vec![0, 0, 0, 0, b'H', 2];
        frame.extend_from_slice(b"BR");
        frame.push(u8::try_from(BR.len()).expect("len"));
        frame.extend_from_slice(BR.as_bytes());
        frame.extend_from_slice(&[1; 32]);
        let len = u32::try_from(frame.len() - 4).expect("len").to_be_bytes();
        frame[..4].copy_from_slice(&len);
        let _ = tls.write_all(&frame).await;
        let _ = tls.flush().await;
        let mut sink = Vec::new();
        use tokio::io::AsyncReadExt;
        let _ = tls.read_to_end(&mut sink).await;
    };
    let (s, ()) = tokio::join!(serve_one(&listener, &hq, None), client);
    let err = s.refused();
    assert!(
        matches!(
            err,
            AuthError::NoCertificate {
                mode: AuthMode::Tls
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "no_certificate");
}

#[test]
fn check_peer_certificate_reports_trust_basis() {
    let ca = Ca::new("UCCOLLAB-CA");
    let leaf = ca.good_leaf(BR);
    let trust = ca.trust();
    assert_eq!(
        check_peer_certificate(leaf.chain(), BR, &trust).expect("ok"),
        TrustBasis::CaSigned
    );
    assert_eq!(
        check_peer_certificate(leaf.chain(), "BR.Example.COM.", &trust).expect("case and dot"),
        TrustBasis::CaSigned
    );
    let own = Identity::self_signed(HQ).expect("identity");
    trust.pin(own.certificate());
    assert_eq!(
        check_peer_certificate(own.chain(), HQ, &trust).expect("ok"),
        TrustBasis::Pinned
    );
    assert!(matches!(
        check_peer_certificate(&[], HQ, &trust),
        Err(AuthError::NoCertificate { .. })
    ));
    assert!(matches!(
        check_peer_certificate(
            &[rustls_pki_types::CertificateDer::from(vec![1, 2, 3])],
            HQ,
            &trust
        ),
        Err(AuthError::BadCertificate { .. })
    ));
}

#[test]
fn a_password_mode_without_password_is_refused_at_start() {
    let err = Authenticator::new(
        AuthMode::TlsPassword,
        Identity::self_signed(HQ).expect("identity"),
        Arc::new(TrustStore::new()),
        None,
        false,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        AuthError::PasswordNotConfigured {
            mode: AuthMode::TlsPassword
        }
    ));
    assert_eq!(
        "tls-password".parse::<AuthMode>().expect("mode"),
        AuthMode::TlsPassword
    );
    assert!("kerberos".parse::<AuthMode>().is_err());
}

#[test]
fn identity_is_created_once_with_a_private_key_file_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Identity::load_or_create(dir.path(), HQ).expect("create");
    let key_path = dir.path().join(Identity::KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = Identity::load_or_create(dir.path(), HQ).expect("reload");
    assert_eq!(first.certificate(), again.certificate());
    assert_eq!(first.fingerprint(), again.fingerprint());
    assert_eq!(again.names(), vec![HQ.to_owned()]);
    // Both usages, valid now, self-consistent: a pinned copy passes the whole policy.
    let trust = TrustStore::new();
    trust.pin(again.certificate());
    check_peer_certificate(again.chain(), HQ, &trust).expect("policy");
    // A changed cluster name is reported, not silently replaced.
    let err = Identity::load_or_create(dir.path(), BR).unwrap_err();
    assert!(matches!(err, AuthError::IdentityName { .. }), "{err:?}");
}

#[test]
fn bad_identity_files_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    assert!(
        matches!(&err, AuthError::Io { path, .. } if path == &cert),
        "{err:?}"
    );
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    assert!(
        matches!(&err, AuthError::BadPem { path, .. } if path == &cert),
        "{err:?}"
    );
    assert_eq!(err.code(), "bad_pem");
    let good = Identity::self_signed(HQ).expect("identity");
    std::fs::write(&cert, good.certificate_pem()).expect("write");
    // An empty key block (spelled out at run time: no key material in the repository).
    let kind = "PRIVATE KEY";
    std::fs::write(
        &key,
        format!("-----BEGIN {kind}-----\n-----END {kind}-----\n"),
    )
    .expect("write");
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    assert!(
        matches!(&err, AuthError::BadPem { path, .. } if path == &key),
        "{err:?}"
    );
}
