//! A minimal Hello / proof exchange over real loopback sockets, following the steps the ILS
//! session takes (see the `auth` module docs), and certificates made with rcgen at test time.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use dialplan::ClusterId;
use ils::auth::{
    AuthError, AuthMode, Authenticator, ChannelBinding, FailureThrottle, Fingerprint, Identity,
    Nonce, PasswordProof, PeerHello, Side, TlsPeer, Transcript, Transport, TrustStore, tls,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PASSWORD: &str = "correct horse battery staple";

/// A test certificate authority.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `name` with the given EKUs, optionally with a validity window.
    pub fn leaf(
        &self,
        name: &str,
        ekus: &[ExtendedKeyUsagePurpose],
        validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ) -> Identity {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = ekus.to_vec();
        if let Some((from, to)) = validity {
            params.not_before = from;
            params.not_after = to;
        }
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        identity(cert.der().clone(), &key)
    }

    /// A leaf for `name` with both serverAuth and clientAuth.
    pub fn good_leaf(&self, name: &str) -> Identity {
        self.leaf(name, &BOTH_EKUS, None)
    }

    pub fn trust(&self) -> TrustStore {
        let mut t = TrustStore::new();
        t.add_ca(self.cert.clone()).expect("add CA");
        t
    }
}

pub const BOTH_EKUS: [ExtendedKeyUsagePurpose; 2] = [
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

fn identity(cert: CertificateDer<'static>, key: &KeyPair) -> Identity {
    let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    Identity::from_der(vec![cert], key).expect("identity")
}

/// A self-signed certificate with chosen EKUs and validity (for pinned-certificate cases).
pub fn self_signed(
    name: &str,
    ekus: &[ExtendedKeyUsagePurpose],
    validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
) -> Identity {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.extended_key_usages = ekus.to_vec();
    if let Some((from, to)) = validity {
        params.not_before = from;
        params.not_after = to;
    }
    let cert = params.self_signed(&key).expect("cert");
    identity(cert.der().clone(), &key)
}

pub fn expired_window() -> (time::OffsetDateTime, time::OffsetDateTime) {
    (
        rcgen::date_time_ymd(2020, 1, 1),
        rcgen::date_time_ymd(2021, 1, 1),
    )
}

/// One edge as the tests drive it.
pub struct Edge {
    pub auth: Authenticator,
    pub id: ClusterId,
    pub name: String,
    /// The peer vector's names by cluster ID.
    pub peers: HashMap<String, String>,
    pub transport: Transport,
}

impl Edge {
    pub fn new(
        id: &str,
        name: &str,
        mode: AuthMode,
        identity: Identity,
        trust: Arc<TrustStore>,
        password: Option<&str>,
    ) -> Self {
        Self {
            auth: Authenticator::new(mode, identity, trust, password, false)
                .expect("authenticator"),
            id: ClusterId::new(id).expect("cluster id"),
            name: name.to_owned(),
            peers: HashMap::new(),
            transport: Transport::Tls,
        }
    }

    pub fn knows(mut self, id: &str, name: &str) -> Self {
        self.peers.insert(id.to_owned(), name.to_owned());
        self
    }
}

/// How one side's attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// Authenticated; with the fingerprint pinned after the password, if any.
    Accepted {
        pinned: Option<Fingerprint>,
        password: bool,
    },
    /// This side refused.
    Refused(AuthError),
    /// The peer refused, with this code (or a TLS-level refusal reported by the peer).
    RefusedByPeer(String),
}

impl Outcome {
    pub fn refused(&self) -> &AuthError {
        match self {
            Self::Refused(e) => e,
            other => panic!("expected a local refusal, got {other:?}"),
        }
    }

    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn send(io: &mut (dyn Io + '_), kind: u8, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len() + 1).expect("small frame");
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&[kind]).await?;
    io.write_all(body).await?;
    io.flush().await
}

async fn recv(io: &mut (dyn Io + '_)) -> std::io::Result<(u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > 4096 {
        return Err(std::io::Error::other("bad frame length"));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    let body = buf.split_off(1);
    Ok((buf[0], body))
}

fn hello(edge: &Edge, nonce: &Nonce) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [edge.id.as_str(), edge.name.as_str()] {
        out.push(u8::try_from(s.len()).expect("short"));
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&nonce.0);
    out
}

fn parse_hello(body: &[u8]) -> Option<(ClusterId, String, Nonce)> {
    let (&id_len, rest) = body.split_first()?;
    let (id, rest) = rest.split_at_checked(usize::from(id_len))?;
    let (&name_len, rest) = rest.split_first()?;
    let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
    Some((
        ClusterId::new(std::str::from_utf8(id).ok()?).ok()?,
        std::str::from_utf8(name).ok()?.to_owned(),
        Nonce::from_slice(rest)?,
    ))
}

fn io_outcome(e: &std::io::Error) -> Outcome {
    match AuthError::from_tls_io(e) {
        Some(AuthError::RefusedByPeer { alert }) => Outcome::RefusedByPeer(format!("tls:{alert}")),
        Some(other) => Outcome::Refused(other),
        None => Outcome::RefusedByPeer(format!("io:{e}")),
    }
}

/// Sends a refusal and closes gracefully, draining what the peer still sends, so that the peer
/// reads the refusal rather than a reset.
async fn refuse(io: &mut (dyn Io + '_), err: &AuthError) {
    let _ = send(io, b'R', err.code().as_bytes()).await;
    let _ = io.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async {
        while let Ok(n) = io.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

/// Runs the Hello and proof exchange on an established connection.
async fn exchange(
    io: &mut (dyn Io + '_),
    edge: &Edge,
    side: Side,
    chain: &[CertificateDer<'static>],
    binding: &ChannelBinding,
) -> Outcome {
    let own_nonce = Nonce::random();
    macro_rules! io_try {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return io_outcome(&e),
            }
        };
    }
    macro_rules! refuse {
        ($err:expr) => {{
            let err: AuthError = $err;
            refuse(io, &err).await;
            return Outcome::Refused(err);
        }};
    }
    io_try!(send(io, b'H', &hello(edge, &own_nonce)).await);
    let (kind, body) = io_try!(recv(io).await);
    if kind == b'R' {
        return Outcome::RefusedByPeer(String::from_utf8_lossy(&body).into_owned());
    }
    let Some((peer_id, peer_name, peer_nonce)) = parse_hello(&body) else {
        return Outcome::RefusedByPeer("bad hello".to_owned());
    };
    let admission = match edge.auth.admit(&PeerHello {
        transport: edge.transport,
        chain,
        cluster_id: &peer_id,
        claimed_name: &peer_name,
        known_name: edge.peers.get(peer_id.as_str()).map(String::as_str),
    }) {
        Ok(a) => a,
        Err(e) => refuse!(e),
    };
    let mut pinned = None;
    if admission.password_required {
        let transcript = Transcript {
            side,
            own_nonce: &own_nonce,
            peer_nonce: &peer_nonce,
            own_id: &edge.id,
            peer_id: &peer_id,
            binding,
        };
        let own_proof = match edge.auth.prove(&transcript) {
            Ok(p) => p,
            Err(e) => refuse!(e),
        };
        if side == Side::Initiator {
            io_try!(send(io, b'P', own_proof.as_bytes()).await);
        }
        let (kind, body) = io_try!(recv(io).await);
        if kind == b'R' {
            return Outcome::RefusedByPeer(String::from_utf8_lossy(&body).into_owned());
        }
        let verified = PasswordProof::from_slice(&body)
            .and_then(|proof| edge.auth.verify_peer(&transcript, &proof));
        if let Err(e) = verified {
            refuse!(e);
        }
        if side == Side::Responder {
            io_try!(send(io, b'P', own_proof.as_bytes()).await);
        }
        pinned = edge.auth.pin_after_password(chain);
    }
    // A peer that refuses closes after its refusal: read it even if this write fails.
    let _ = send(io, b'K', &[]).await;
    let (kind, body) = io_try!(recv(io).await);
    if kind != b'K' {
        return Outcome::RefusedByPeer(String::from_utf8_lossy(&body).into_owned());
    }
    Outcome::Accepted {
        pinned,
        password: admission.password_required,
    }
}

/// Accepts one connection and authenticates it.
pub async fn serve_one(
    listener: &TcpListener,
    edge: &Edge,
    throttle: Option<&mut FailureThrottle>,
) -> Outcome {
    let (tcp, from) = match listener.accept().await {
        Ok(x) => x,
        Err(e) => return Outcome::RefusedByPeer(format!("accept: {e}")),
    };
    let now = std::time::Instant::now();
    if let Some(t) = &throttle
        && let Err(e) = t.check(from.ip(), now)
    {
        return Outcome::Refused(e);
    }
    let outcome = serve_stream(tcp, edge).await;
    if let Some(t) = throttle {
        match &outcome {
            Outcome::Accepted { .. } => t.record_success(from.ip()),
            Outcome::Refused(e) if e.counts_as_failure() => {
                t.record_failure(from.ip(), now);
            }
            _ => {}
        }
    }
    outcome
}

async fn serve_stream(mut tcp: TcpStream, edge: &Edge) -> Outcome {
    if edge.transport == Transport::Plain {
        if let Err(e) = edge.auth.check_transport(Transport::Plain) {
            refuse(&mut tcp, &e).await;
            return Outcome::Refused(e);
        }
        return exchange(&mut tcp, edge, Side::Responder, &[], &ChannelBinding::None).await;
    }
    let acceptor = edge.auth.acceptor().expect("acceptor");
    let mut stream = match acceptor.accept(tcp).await {
        Ok(s) => s,
        Err(e) => return io_outcome(&e),
    };
    let peer = TlsPeer::from_server(&stream).expect("tls peer");
    exchange(
        &mut stream,
        edge,
        Side::Responder,
        &peer.chain,
        &peer.binding,
    )
    .await
}

/// Connects to `addr` and authenticates; `peer_name` is the name the peer vector knows for the
/// cluster dialled, if any.
pub async fn connect(addr: SocketAddr, edge: &Edge, peer_name: Option<&str>) -> Outcome {
    let mut tcp = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::RefusedByPeer(format!("connect: {e}")),
    };
    if edge.transport == Transport::Plain {
        if let Err(e) = edge.auth.check_transport(Transport::Plain) {
            return Outcome::Refused(e);
        }
        return exchange(&mut tcp, edge, Side::Initiator, &[], &ChannelBinding::None).await;
    }
    let connector = edge.auth.connector().expect("connector");
    let mut stream = match connector
        .connect(tls::server_name(peer_name, addr.ip()), tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => return io_outcome(&e),
    };
    let peer = TlsPeer::from_client(&stream).expect("tls peer");
    exchange(
        &mut stream,
        edge,
        Side::Initiator,
        &peer.chain,
        &peer.binding,
    )
    .await
}

/// Runs one server and one client attempt; returns (server outcome, client outcome).
pub async fn pair(
    server: &Edge,
    client: &Edge,
    name_known_by_client: Option<&str>,
) -> (Outcome, Outcome) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::join!(
        serve_one(&listener, server, None),
        connect(addr, client, name_known_by_client)
    )
}

/// A relay between the client and `upstream` that terminates TLS on both legs with its own
/// self-signed identity and copies the plaintext both ways (a man in the middle).
pub async fn spawn_relay(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("relay addr");
    let identity = Identity::self_signed("relay.example.net").expect("relay identity");
    let trust = Arc::new(TrustStore::new());
    let acceptor = tls::acceptor(AuthMode::Password, &identity, trust.clone()).expect("acceptor");
    let connector = tls::connector(AuthMode::Password, &identity, trust).expect("connector");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut down) = acceptor.accept(tcp).await else {
            return;
        };
        let Ok(up_tcp) = TcpStream::connect(upstream).await else {
            return;
        };
        let Ok(mut up) = connector
            .connect(tls::server_name(None, upstream.ip()), up_tcp)
            .await
        else {
            return;
        };
        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
    });
    addr
}
