//! Edges launched with `Service::launch` over loopback sockets, and certificates made with
//! rcgen at test time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{
    ClusterId, DirectoryUri, DuplicatePolicy, LearnedTable, Role, RouteString, UriLookupPolicy,
};
use ils::auth::AuthMode;
use ils::{Service, Setup};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tokio::net::TcpListener;

pub(crate) const PASSWORD: &str = "lab-ils-password";

pub(crate) const BOTH: [ExtendedKeyUsagePurpose; 2] = [
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// One launched edge.
pub(crate) struct Edge {
    pub(crate) service: Service,
    pub(crate) table: Arc<LearnedTable>,
    pub(crate) tls: SocketAddr,
    pub(crate) password: Option<SocketAddr>,
}

impl Edge {
    pub(crate) async fn stop(self) {
        self.service.shutdown(Duration::from_secs(2)).await;
    }

    /// Authentication refusals counted by this edge, by code.
    pub(crate) fn refused(&self, code: &str) -> u64 {
        self.service
            .stats()
            .auth_failures
            .get(code)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn linked(&self, id: &str) -> bool {
        self.service
            .peers()
            .iter()
            .any(|p| p.cluster_id.as_str() == id && p.linked)
    }
}

pub(crate) fn name(id: &str) -> String {
    format!("{}.example.com", id.to_lowercase())
}

/// A setup for cluster `id` keeping its state in `dir`.
pub(crate) fn setup(id: &str, role: Role, dir: &Path, auth: AuthMode) -> Setup {
    let mut s = Setup::new(ClusterId::new(id).expect("id"), name(id), role, dir);
    s.route_strings = vec![route(id)];
    s.auth = auth;
    if auth.uses_password() {
        s.password = Some(PASSWORD.to_owned());
    }
    s
}

/// A setup for spoke BR keeping its state in `dir`, registering with `hub`.
pub(crate) fn spoke_of(hub: &Edge, dir: &Path, auth: AuthMode) -> Setup {
    let mut s = setup("BR", Role::Spoke, dir, auth);
    s.registrar = Some(hub.tls.to_string());
    s
}

/// Launches `setup`, listening on `tls` (port 0 for any) and, with a password, on another
/// port for password-only links.
pub(crate) async fn launch(mut setup: Setup, tls: SocketAddr) -> Edge {
    let tls_listener = TcpListener::bind(tls).await.expect("bind tls");
    let tls = tls_listener.local_addr().expect("addr");
    setup.advertise_addrs = vec![tls];
    let with_password = setup.password.is_some();
    let table = Arc::new(LearnedTable::new(
        100_000,
        DuplicatePolicy::FirstLearned,
        UriLookupPolicy::CaseSensitive,
    ));
    let service = Service::launch(setup, table.clone()).await.expect("launch");
    service.serve_tls(tls_listener).expect("serve tls");
    let password = if with_password {
        let l = TcpListener::bind((tls.ip(), 0))
            .await
            .expect("bind password");
        Some(service.serve_password(l).expect("serve password"))
    } else {
        None
    };
    Edge {
        service,
        table,
        tls,
        password,
    }
}

pub(crate) fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(crate) fn route(id: &str) -> RouteString {
    RouteString::new(&format!("{}.route", id.to_lowercase())).expect("route")
}

pub(crate) fn uri(user: &str, id: &str) -> DirectoryUri {
    DirectoryUri::parse(
        &format!("{user}@{}", name(id)),
        UriLookupPolicy::CaseSensitive,
    )
    .expect("uri")
}

/// `users` of cluster `id` with its route string.
pub(crate) fn records(id: &str, users: &[&str]) -> Vec<(DirectoryUri, RouteString)> {
    users.iter().map(|u| (uri(u, id), route(id))).collect()
}

/// Waits until `f` holds, polling; fails after 20 s.
pub(crate) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A certificate and key written as PEM files in `dir`: self-signed, or signed by `ca`.
pub(crate) fn cert_files(
    dir: &Path,
    file: &str,
    name: &str,
    ekus: &[ExtendedKeyUsagePurpose],
    validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ca: Option<&Ca>,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = ekus.to_vec();
    if let Some((from, to)) = validity {
        params.not_before = from;
        params.not_after = to;
    }
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.issuer).expect("signed"),
        None => params.self_signed(&key).expect("self-signed"),
    };
    let cert_path = dir.join(format!("{file}.pem"));
    let key_path = dir.join(format!("{file}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// A test certificate authority.
pub(crate) struct Ca {
    issuer: rcgen::Issuer<'static, KeyPair>,
    pub(crate) file: PathBuf,
}

impl Ca {
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        let file = dir.join("ca.pem");
        std::fs::write(&file, cert.pem()).expect("write CA");
        Self {
            issuer: rcgen::Issuer::new(params, key),
            file,
        }
    }
}
