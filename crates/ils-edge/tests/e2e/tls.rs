//! SIP over TLS through the HQ edge (issue 3 item 7: Debian's SIPp has no TLS, so the caller
//! here is a small Rust UAC over tokio-rustls).
//!
//! The HQ edge listens on `tls://127.0.1.1:5061` with its own self-signed identity (made on
//! first start in its data directory, `var/hq/ils-identity.pem`). The client trusts exactly that
//! certificate, checks the name `hq-edge.lab.example.com`, connects from HQ's phones
//! (127.0.1.20, a source trunk `hq-pbx` accepts) and places a call to Alice, answered by the
//! SIPp UAS at 127.0.1.10 over UDP: the edge relays every response back over the same TLS
//! connection, and ACK and BYE follow the Record-Route set (two entries, since the transport
//! changes from TLS to UDP). OPTIONS to the edge is answered `200`, an unknown URI `404`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::lab::{Edge, HQ_PHONES, HQ_UAS_IP, Lab, prerequisites, sc};

/// The HQ edge's TLS listener (config/lab/hq.toml).
const HQ_EDGE_TLS: &str = "127.0.1.1:5061";
/// The name in the edge's certificate: its `[cluster] name`.
const HQ_EDGE_NAME: &str = "hq-edge.lab.example.com";
/// Upper bound for any single wait; only to turn a hang into a failure.
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn call_over_tls_to_alice_completes_and_the_edge_answers_options_and_404() {
    if !prerequisites() {
        return;
    }
    let mut lab = Lab::new();
    lab.uas(sc::UAS_ANSWER, HQ_UAS_IP);
    lab.start(Edge::Hq);
    wait_for_log(&lab, &format!("listening proto=tls addr={HQ_EDGE_TLS}"));
    let cert = lab
        .path()
        .join("var/hq")
        .join(ils::auth::Identity::CERT_FILE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ua = Ua::connect(&cert).await;
        ua.options_to_the_edge().await;
        ua.call_alice().await;
        ua.invite_unknown_gets_404().await;
    });
}

/// Waits (bounded) until the HQ edge's log has `line`.
fn wait_for_log(lab: &Lab, line: &str) {
    let deadline = Instant::now() + WAIT;
    while !lab.log(Edge::Hq).contains(line) {
        assert!(
            Instant::now() < deadline,
            "no `{line}` in the HQ edge's log after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UAC on one TLS connection to the HQ edge.
struct Ua {
    conn: SipStream<TlsStream<tokio::net::TcpStream>>,
    local: SocketAddr,
    branches: u32,
}

impl Ua {
    /// Connects from 127.0.1.20 to the edge, trusting only the edge's own certificate.
    async fn connect(cert: &Path) -> Self {
        let pem = std::fs::read(cert)
            .unwrap_or_else(|e| panic!("the edge's certificate {}: {e}", cert.display()));
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(c.expect("PEM certificate"))
                .expect("trust anchor");
        }
        assert!(!roots.is_empty(), "no certificate in {}", cert.display());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{HQ_PHONES}:0").parse().expect("addr"))
            .expect("bind the phones' address");
        let tcp = timeout(WAIT, socket.connect(HQ_EDGE_TLS.parse().expect("addr")))
            .await
            .expect("connect in time")
            .expect("connect to the edge's TLS listener");
        let local = tcp.local_addr().expect("local addr");
        let name = ServerName::try_from(HQ_EDGE_NAME).expect("server name");
        let tls = timeout(
            WAIT,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake: the edge presents a certificate for its cluster name");
        Self {
            conn: SipStream::new(tls),
            local,
            branches: 0,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-tls-{}-{}", std::process::id(), self.branches)
    }

    fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/TLS {};branch={branch};rport", self.local)
    }

    fn contact(&self) -> String {
        format!("<sip:tls-uac@{};transport=tls>", self.local)
    }

    /// OPTIONS addressed to the edge itself is answered by the edge, `200`.
    async fn options_to_the_edge(&mut self) {
        let branch = self.branch();
        let req = Request {
            method: "OPTIONS",
            uri: format!("sip:{HQ_EDGE_NAME}"),
            via: self.via(&branch),
            route: None,
            from: "<sip:tls-uac@hq.example.com>;tag=tls-o1".into(),
            to: format!("<sip:{HQ_EDGE_NAME}>"),
            call_id: format!("tls-options-{}@{HQ_PHONES}", std::process::id()),
            cseq: "1 OPTIONS".into(),
            contact: self.contact(),
            body: String::new(),
        };
        self.conn.send(&req.render()).await;
        let resp = self.conn.final_response("OPTIONS").await;
        assert_eq!(resp.status, 200, "OPTIONS to the edge:\n{}", resp.raw);
        assert_eq!(resp.top_via_branch().as_deref(), Some(branch.as_str()));
    }

    /// INVITE, 100, 180, 200 (relayed back over TLS), ACK and BYE along the Record-Route set,
    /// 200 for the BYE.
    async fn call_alice(&mut self) {
        let call_id = format!("tls-call-{}@{HQ_PHONES}", std::process::id());
        let from = "<sip:tls-uac@hq.example.com>;tag=tls-c1".to_owned();
        let branch = self.branch();
        let invite = Request {
            method: "INVITE",
            uri: "sip:alice@hq.example.com".into(),
            via: self.via(&branch),
            route: None,
            from: from.clone(),
            to: "<sip:alice@hq.example.com>".into(),
            call_id: call_id.clone(),
            cseq: "1 INVITE".into(),
            contact: self.contact(),
            body: sdp(self.local),
        };
        self.conn.send(&invite.render()).await;

        let mut seen = Vec::new();
        let ok = loop {
            let resp = self.conn.read().await;
            assert_eq!(
                resp.cseq().as_deref(),
                Some("1 INVITE"),
                "unexpected message:\n{}",
                resp.raw
            );
            assert_eq!(resp.call_id().as_deref(), Some(call_id.as_str()));
            assert_eq!(
                resp.top_via_branch().as_deref(),
                Some(branch.as_str()),
                "the edge removed its own Via and left ours on top:\n{}",
                resp.raw
            );
            seen.push(resp.status);
            if resp.status >= 200 {
                break resp;
            }
        };
        assert_eq!(ok.status, 200, "INVITE to Alice over TLS:\n{}", ok.raw);
        assert!(seen.contains(&100), "no 100 Trying from the edge: {seen:?}");
        assert!(seen.contains(&180), "no 180 relayed back: {seen:?}");
        assert!(
            ok.body.contains("m=audio"),
            "the 200's SDP body was relayed:\n{}",
            ok.raw
        );

        // The UAC's route set: the Record-Route values in reverse (RFC 3261 §12.1.2).
        let mut route_set = ok.list("record-route");
        route_set.reverse();
        assert_eq!(
            route_set.len(),
            2,
            "two Record-Route entries for the TLS-to-UDP change:\n{}",
            ok.raw
        );
        assert!(
            route_set[0].to_ascii_lowercase().contains("transport=tls")
                && route_set[0].contains("5061"),
            "the entry facing us is the TLS listener: {route_set:?}"
        );
        let route = route_set.join(", ");
        let remote_target = ok.contact_uri().expect("Contact in the 200");
        let to = ok.header("to").expect("To in the 200").to_owned();
        assert!(to.contains("tag="), "the 200's To has a tag: {to}");

        let ack_branch = self.branch();
        let ack = Request {
            method: "ACK",
            uri: remote_target.clone(),
            via: self.via(&ack_branch),
            route: Some(route.clone()),
            from: from.clone(),
            to: to.clone(),
            call_id: call_id.clone(),
            cseq: "1 ACK".into(),
            contact: self.contact(),
            body: String::new(),
        };
        self.conn.send(&ack.render()).await;

        let bye_branch = self.branch();
        let bye = Request {
            method: "BYE",
            uri: remote_target,
            via: self.via(&bye_branch),
            route: Some(route),
            from,
            to,
            call_id: call_id.clone(),
            cseq: "2 BYE".into(),
            contact: self.contact(),
            body: String::new(),
        };
        self.conn.send(&bye.render()).await;
        // 200 retransmissions for the INVITE may still arrive before the ACK reached the UAS.
        let resp = self.conn.final_response("BYE").await;
        assert_eq!(resp.status, 200, "BYE over TLS:\n{}", resp.raw);
        assert_eq!(resp.call_id().as_deref(), Some(call_id.as_str()));
        assert_eq!(resp.top_via_branch().as_deref(), Some(bye_branch.as_str()));
    }

    /// An INVITE for a URI nobody has is answered `404` (after `100`), then ACKed hop by hop.
    async fn invite_unknown_gets_404(&mut self) {
        let call_id = format!("tls-404-{}@{HQ_PHONES}", std::process::id());
        let branch = self.branch();
        let mut invite = Request {
            method: "INVITE",
            uri: "sip:nobody@hq.example.com".into(),
            via: self.via(&branch),
            route: None,
            from: "<sip:tls-uac@hq.example.com>;tag=tls-n1".into(),
            to: "<sip:nobody@hq.example.com>".into(),
            call_id,
            cseq: "1 INVITE".into(),
            contact: self.contact(),
            body: sdp(self.local),
        };
        self.conn.send(&invite.render()).await;
        let resp = self.conn.final_response("INVITE").await;
        assert_eq!(resp.status, 404, "INVITE for nobody:\n{}", resp.raw);
        // ACK for a non-2xx: same branch and Request-URI, the response's To (RFC 3261 §17.1.1.3).
        invite.method = "ACK";
        invite.cseq = "1 ACK".into();
        invite.to = resp.header("to").expect("To in the 404").to_owned();
        invite.body.clear();
        self.conn.send(&invite.render()).await;
    }
}

fn sdp(local: SocketAddr) -> String {
    format!(
        "v=0\r\no=tls-uac 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = local.ip()
    )
}

/// A request as the UAC writes it, framed by Content-Length.
struct Request {
    method: &'static str,
    uri: String,
    via: String,
    route: Option<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    contact: String,
    body: String,
}

impl Request {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        let _ = write!(out, "Via: {}\r\n", self.via);
        out.push_str("Max-Forwards: 70\r\n");
        if let Some(route) = &self.route {
            let _ = write!(out, "Route: {route}\r\n");
        }
        let _ = write!(out, "From: {}\r\n", self.from);
        let _ = write!(out, "To: {}\r\n", self.to);
        let _ = write!(out, "Call-ID: {}\r\n", self.call_id);
        let _ = write!(out, "CSeq: {}\r\n", self.cseq);
        let _ = write!(out, "Contact: {}\r\n", self.contact);
        if !self.body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        out.push_str(&self.body);
        out
    }
}

/// A SIP message read off the stream: enough of it for the assertions.
#[derive(Debug)]
struct Received {
    /// The status code; 0 for a request.
    status: u16,
    /// Header lines as (lower-case long name, value), compact names expanded.
    headers: Vec<(String, String)>,
    body: String,
    raw: String,
}

impl Received {
    fn parse(raw: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").expect("header section");
        let mut lines = head.split("\r\n");
        let start = lines.next().expect("start line");
        let status = start
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line.split_once(':').expect("header line with a colon");
            headers.push((long_name(name.trim()), value.trim().to_owned()));
        }
        Self {
            status,
            headers,
            body: body.to_owned(),
            raw: raw.clone(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated value of a list header, across lines.
    fn list(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    fn cseq(&self) -> Option<String> {
        self.header("cseq")
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn call_id(&self) -> Option<String> {
        self.header("call-id").map(str::to_owned)
    }

    fn top_via_branch(&self) -> Option<String> {
        let via = self.list("via").into_iter().next()?;
        via.split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
            .map(|(_, v)| v.trim().to_owned())
    }

    /// The URI of the first Contact.
    fn contact_uri(&self) -> Option<String> {
        let contact = self.list("contact").into_iter().next()?;
        let start = contact.find('<')? + 1;
        let end = contact[start..].find('>')? + start;
        Some(contact[start..end].to_owned())
    }
}

fn long_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        _ => return lower,
    }
    .to_owned()
}

/// Splits a list header value on commas outside `<...>` and quotes.
fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(v[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_owned());
    }
    out
}

/// A byte stream cut into SIP messages by Content-Length (RFC 3261 §18.3).
struct SipStream<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SipStream<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, msg: &str) {
        timeout(WAIT, async {
            self.io.write_all(msg.as_bytes()).await?;
            self.io.flush().await
        })
        .await
        .expect("write in time")
        .expect("write to the edge");
    }

    /// The next message, within [`WAIT`].
    async fn read(&mut self) -> Received {
        timeout(WAIT, self.read_unbounded())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no complete SIP message from the edge within {WAIT:?}; buffered:\n{}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
    }

    async fn read_unbounded(&mut self) -> Received {
        loop {
            if let Some(len) = self.complete() {
                let msg: Vec<u8> = self.buf.drain(..len).collect();
                return Received::parse(&msg);
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.expect("read from the edge");
            assert!(
                n > 0,
                "the edge closed the TLS connection; buffered:\n{}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The length of the first complete message in the buffer (CRLF keepalives dropped).
    fn complete(&mut self) -> Option<usize> {
        let skip = self
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.buf.drain(..skip);
        let head = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&self.buf[..head]);
        let length = text
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| long_name(n.trim()) == "content-length")
            .map_or(0, |(_, v)| {
                v.trim().parse::<usize>().expect("numeric Content-Length")
            });
        (self.buf.len() >= head + length).then_some(head + length)
    }

    /// Reads until a final response for `method`, skipping provisional responses and
    /// retransmitted final responses of other transactions.
    async fn final_response(&mut self, method: &str) -> Received {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no final response to {method} within {WAIT:?}"
            );
            let msg = self.read().await;
            let for_method = msg
                .cseq()
                .is_some_and(|c| c.split_whitespace().nth(1) == Some(method));
            if msg.status >= 200 && for_method {
                return msg;
            }
        }
    }
}
