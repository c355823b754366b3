//! A proxy on loopback sockets, a fake trunk that answers, and a UAC that sends requests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sip_proxy::message::{Framer, Message, ResponseBuilder};
use sip_proxy::proxy::{self, Config, Core, LocalAddr};
use sip_proxy::transaction::{Peer, Transport};
use sip_proxy::transport::DriverConfig;
use sip_proxy::{Proxy, ProxyHandle, Route, RouteRequest, RouteResult, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Upper bound for any single wait; only to turn a hang into a failure.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Routes every request to a fixed list of destinations; `unknown` gets 404 and `panic` stands
/// for a bug in routing.
pub(crate) struct StaticRoute(pub(crate) Vec<Peer>);

impl Route for StaticRoute {
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult {
        assert!(req.uri.user() != Some(b"panic"), "a bug in routing");
        if req.uri.user() == Some(b"unknown") {
            return RouteResult::Reject {
                status: 404,
                reason: "Not Found".into(),
            };
        }
        RouteResult::Forward(Target {
            trunk: "test".into(),
            destinations: self.0.clone(),
            headers: vec![],
        })
    }
}

pub(crate) struct Running {
    pub(crate) handle: ProxyHandle<StaticRoute>,
    pub(crate) events: mpsc::Receiver<proxy::Event>,
}

/// Starts a proxy listening on UDP, TCP and (optionally) TLS on 127.0.0.1.
pub(crate) async fn start_proxy(
    destinations: Vec<Peer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Running {
    start_proxy_with(destinations, tls, DriverConfig::default()).await
}

/// [`start_proxy`] with driver settings.
pub(crate) async fn start_proxy_with(
    destinations: Vec<Peer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    driver: DriverConfig,
) -> Running {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut local = vec![
        LocalAddr {
            transport: Transport::Udp,
            addr: udp.local_addr().unwrap(),
        },
        LocalAddr {
            transport: Transport::Tcp,
            addr: tcp.local_addr().unwrap(),
        },
    ];
    let tls_listener = match tls {
        Some(acceptor) => {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            local.push(LocalAddr {
                transport: Transport::Tls,
                addr: l.local_addr().unwrap(),
            });
            Some((l, acceptor))
        }
        None => None,
    };
    let mut config = Config {
        local,
        ..Config::default()
    };
    config.transaction.response_timeout = Duration::from_millis(300);
    let core = Core::new(config, StaticRoute(destinations));
    let (tx, events) = mpsc::channel(64);
    let mut proxy = Proxy::new(core, driver, None, Some(tx));
    proxy.register_udp(udp).unwrap();
    proxy.register_tcp(tcp).unwrap();
    if let Some((l, a)) = tls_listener {
        proxy.register_tls(l, a).unwrap();
    }
    Running {
        handle: proxy.start().unwrap(),
        events,
    }
}

/// A UDP trunk answering INVITE with 180 then `status`, and anything else with 200.
pub(crate) async fn udp_trunk(status: u16) -> Peer {
    udp_trunk_after(status, Duration::ZERO).await
}

/// Like [`udp_trunk`], with the final response to INVITE sent `delay` after the 180.
pub(crate) async fn udp_trunk_after(status: u16, delay: Duration) -> Peer {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            for (i, resp) in answers(&msg, status).into_iter().enumerate() {
                if i == 1 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let _ = socket.send_to(&resp, from).await;
            }
        }
    });
    Peer {
        transport: Transport::Udp,
        addr,
    }
}

/// A TCP trunk with the same behaviour as [`udp_trunk`].
pub(crate) async fn tcp_trunk(status: u16) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let framer = Framer::default();
                let mut buf = BytesMut::new();
                while stream.read_buf(&mut buf).await.is_ok_and(|n| n > 0) {
                    while let Ok(Some(msg)) = framer.decode(&mut buf) {
                        for resp in answers(&msg, status) {
                            let _ = stream.write_all(&resp).await;
                        }
                    }
                }
            });
        }
    });
    Peer {
        transport: Transport::Tcp,
        addr,
    }
}

fn answers(msg: &Message, status: u16) -> Vec<Bytes> {
    match msg.method() {
        Some(sip_proxy::message::Method::Invite) => vec![
            ResponseBuilder::new(msg, 180, "Ringing")
                .to_tag(b"trunk")
                .build(),
            ResponseBuilder::new(msg, status, "Final")
                .to_tag(b"trunk")
                .build(),
        ],
        Some(sip_proxy::message::Method::Ack) => vec![],
        Some(_) => vec![
            ResponseBuilder::new(msg, 200, "OK")
                .to_tag(b"trunk")
                .build(),
        ],
        None => vec![],
    }
}

/// A request from a UAC at `from` (for its Via).
pub(crate) fn request(
    method: &str,
    user: &str,
    from: SocketAddr,
    transport: &str,
    branch: &str,
) -> String {
    format!(
        "{method} sip:{user}@edge.example.net SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:{user}@edge.example.net>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 {method}\r\nContact: <sip:alice@{from}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A UDP UAC.
pub(crate) struct UdpUac {
    pub(crate) socket: UdpSocket,
}

impl UdpUac {
    pub(crate) async fn new() -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub(crate) async fn send(&self, to: SocketAddr, raw: impl AsRef<[u8]>) {
        self.socket.send_to(raw.as_ref(), to).await.unwrap();
    }

    /// Receives responses until a final one; returns every status seen.
    pub(crate) async fn statuses_until_final(&self) -> Vec<u16> {
        let mut statuses = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
                .await
                .expect("response")
                .unwrap();
            let msg = Message::parse_lenient(Bytes::copy_from_slice(&buf[..n])).unwrap();
            let status = msg.status().unwrap();
            statuses.push(status);
            if status >= 200 {
                return statuses;
            }
        }
    }
}

/// Reads responses from a stream until a final one.
pub(crate) async fn stream_statuses_until_final<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> Vec<u16> {
    let framer = Framer::default();
    let mut buf = BytesMut::new();
    let mut statuses = Vec::new();
    loop {
        while let Some(msg) = framer.decode(&mut buf).unwrap() {
            let status = msg.status().unwrap();
            statuses.push(status);
            if status >= 200 {
                return statuses;
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read_buf(&mut buf))
            .await
            .expect("response")
            .unwrap();
        assert!(n > 0, "connection closed");
    }
}

pub(crate) async fn tcp_connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}
