//! Session-level handshake cases driven frame by frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialplan::{ClusterId, Role, RouteString};

use crate::proto::handshake::{Admission, AuthContext, AuthError, AuthFailure, Authenticator};
use crate::proto::wire::{Hello, Welcome, WireRole};
use crate::proto::{
    CloseReason, Frame, LinkInfo, LocalIdentity, OpenAuthenticator, RefuseReason, Session,
    SessionConfig, SessionEvent, Side,
};

fn identity(id: &str, role: Role) -> Arc<LocalIdentity> {
    Arc::new(LocalIdentity {
        cluster_id: ClusterId::new(id).expect("valid"),
        cluster_name: format!("{id}.example.com"),
        role,
        route_strings: vec![RouteString::new("x.route").expect("valid")],
        addresses: Vec::new(),
        instance: 7,
    })
}

fn session(
    side: Side,
    id: &str,
    role: Role,
    auth: Arc<dyn Authenticator>,
    now: Instant,
) -> Session {
    Session::new(
        side,
        identity(id, role),
        SessionConfig::default(),
        auth,
        LinkInfo::default(),
        [side as u8 + 1; 32],
        now,
    )
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn frames(s: &mut Session) -> Vec<Frame> {
    std::iter::from_fn(|| s.poll_frame()).collect()
}

/// Runs a dialer and an acceptor against each other, admitting every peer.
fn pump(a: &mut Session, b: &mut Session, now: Instant) -> (Vec<SessionEvent>, Vec<SessionEvent>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for f in frames(a) {
            let _ = b.handle_frame(now, f);
        }
        for f in frames(b) {
            let _ = a.handle_frame(now, f);
        }
        for (s, out) in [(&mut *a, &mut ea), (&mut *b, &mut eb)] {
            for e in events(s) {
                if matches!(e, SessionEvent::Admit(_)) {
                    s.admit(now, Ok(None));
                }
                out.push(e);
            }
        }
    }
    (ea, eb)
}

#[test]
fn handshake_completes_in_three_messages() {
    let now = Instant::now();
    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(OpenAuthenticator),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    let (ea, eb) = pump(&mut a, &mut b, now);
    assert!(a.is_up() && b.is_up());
    assert!(
        ea.iter().any(
            |e| matches!(e, SessionEvent::Up { peer: p, .. } if p.cluster_id.as_str() == "HQ")
        )
    );
    assert!(eb.iter().any(
        |e| matches!(e, SessionEvent::Up { peer: p, .. } if p.cluster_id.as_str() == "BR" && p.version == 1)
    ));
}

#[test]
fn acceptor_refuses_a_hello_with_no_common_version() {
    let now = Instant::now();
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    let hello = Hello {
        min_version: 2,
        max_version: 3,
        cluster_id: "BR".into(),
        cluster_name: "br".into(),
        role: WireRole::Spoke as i32,
        ..Hello::default()
    };
    b.handle_frame(now, Frame::Hello(hello))
        .expect("refusal is not a protocol error");
    let out = frames(&mut b);
    let Some(Frame::Refuse(r)) = out.first() else {
        panic!("expected Refuse, got {out:?}");
    };
    assert_eq!(r.reason, RefuseReason::VersionMismatch as i32);
    assert!(
        r.detail.contains("we speak 1..=1, the peer 2..=3"),
        "{}",
        r.detail
    );
    assert!(b.is_closed());
}

#[test]
fn dialer_refuses_a_welcome_with_a_version_it_does_not_speak() {
    let now = Instant::now();
    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(OpenAuthenticator),
        now,
    );
    frames(&mut a);
    let welcome = Welcome {
        version: 9,
        cluster_id: "HQ".into(),
        role: WireRole::Hub as i32,
        ..Welcome::default()
    };
    a.handle_frame(now, Frame::Welcome(welcome))
        .expect("refusal");
    assert!(events(&mut a).iter().any(|e| matches!(
        e,
        SessionEvent::Refused {
            reason: RefuseReason::VersionMismatch,
            by_peer: false,
            ..
        }
    )));
}

struct Password(&'static [u8]);

impl Password {
    fn proof(&self, ctx: &AuthContext<'_>) -> Vec<u8> {
        // A stand-in for the auth module's HMAC: binds the side, the secret and both nonces.
        let mut v = vec![ctx.side as u8];
        v.extend_from_slice(self.0);
        v.extend_from_slice(ctx.dialer_nonce);
        v.extend_from_slice(ctx.acceptor_nonce);
        v
    }
}

impl Authenticator for Password {
    fn admit(&self, _: &AuthContext<'_>) -> Result<Admission, AuthError> {
        Ok(Admission {
            password_required: true,
        })
    }
    fn prove(&self, ctx: &AuthContext<'_>) -> Result<Vec<u8>, AuthError> {
        Ok(self.proof(ctx))
    }
    fn verify(&self, ctx: &AuthContext<'_>, proof: &[u8]) -> Result<(), AuthError> {
        // The peer's proof was made on the other side.
        let mut expected = self.proof(ctx);
        expected[0] = match ctx.side {
            Side::Dialer => Side::Acceptor as u8,
            Side::Acceptor => Side::Dialer as u8,
        };
        if proof.is_empty() {
            return Err(AuthError::new(AuthFailure::MissingProof, "no proof"));
        }
        if proof == expected {
            Ok(())
        } else {
            Err(AuthError::new(
                AuthFailure::WrongPassword,
                "the password proof does not match",
            ))
        }
    }
}

/// Frames exchanged, in order, as `(sender, frame)`.
fn exchange(a: &mut Session, b: &mut Session, now: Instant) -> Vec<(char, Frame)> {
    let mut log = Vec::new();
    for _ in 0..10 {
        for f in frames(a) {
            log.push(('D', f.clone()));
            let _ = b.handle_frame(now, f);
        }
        for f in frames(b) {
            log.push(('A', f.clone()));
            let _ = a.handle_frame(now, f);
        }
        for s in [&mut *a, &mut *b] {
            for e in events(s) {
                if matches!(e, SessionEvent::Admit(_)) {
                    s.admit(now, Ok(None));
                }
            }
        }
    }
    log
}

#[test]
fn the_dialer_proves_first_and_the_acceptor_only_after_verifying_it() {
    let now = Instant::now();
    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(Password(b"secret")),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(Password(b"secret")),
        now,
    );
    let log = exchange(&mut a, &mut b, now);
    let names: Vec<(char, &str)> = log.iter().map(|(s, f)| (*s, f.name())).collect();
    assert_eq!(
        &names[..4],
        [
            ('D', "Hello"),
            ('A', "Welcome"),
            ('D', "Confirm"),
            ('A', "Accept")
        ]
    );
    assert!(matches!(&log[2].1, Frame::Confirm(c) if !c.auth_proof.is_empty()));
    assert!(matches!(&log[3].1, Frame::Accept(c) if !c.auth_proof.is_empty()));
    assert!(a.is_up() && b.is_up());
}

#[test]
fn a_dialer_with_the_wrong_password_never_obtains_the_acceptors_proof() {
    let now = Instant::now();
    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(Password(b"guess")),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(Password(b"secret")),
        now,
    );
    let log = exchange(&mut a, &mut b, now);
    assert!(a.is_closed() && b.is_closed());
    assert!(
        !log.iter().any(|(_, f)| matches!(f, Frame::Accept(_))),
        "{log:?}"
    );
    // The acceptor refuses with the specific code, which the dialer receives.
    let refuse = log.iter().find_map(|(s, f)| match f {
        Frame::Refuse(r) if *s == 'A' => Some(r.clone()),
        _ => None,
    });
    let r = refuse.expect("a Refuse from the acceptor");
    assert_eq!(r.reason, RefuseReason::BadAuth as i32);
    assert_eq!(r.auth_code, "wrong_password");
}

#[test]
fn authenticator_refusal_closes_both_sides_with_bad_auth() {
    let now = Instant::now();
    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(Password(b"secret")),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(Password(b"other")),
        now,
    );
    let (ea, eb) = pump(&mut a, &mut b, now);
    assert!(a.is_closed() && b.is_closed());
    // The acceptor checks the dialer's proof first and refuses.
    assert!(eb.iter().any(|e| matches!(e, SessionEvent::Refused { reason: RefuseReason::BadAuth, by_peer: false, detail, auth: Some(AuthFailure::WrongPassword) } if detail.contains("wrong_password"))));
    assert!(ea.iter().any(|e| matches!(
        e,
        SessionEvent::Refused {
            reason: RefuseReason::BadAuth,
            by_peer: true,
            auth: Some(AuthFailure::WrongPassword),
            ..
        }
    )));

    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(Password(b"secret")),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(Password(b"secret")),
        now,
    );
    pump(&mut a, &mut b, now);
    assert!(a.is_up() && b.is_up());
}

#[test]
fn a_nonce_of_the_wrong_length_is_a_protocol_error() {
    let now = Instant::now();
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        cluster_id: "BR".into(),
        cluster_name: "br".into(),
        role: WireRole::Spoke as i32,
        nonce: vec![0; 16],
        ..Hello::default()
    };
    let err = b.handle_frame(now, Frame::Hello(hello)).unwrap_err();
    assert!(err.to_string().contains("nonce"), "{err}");
}

#[test]
fn handshake_times_out_and_idle_link_closes_after_keepalives_stop() {
    let now = Instant::now();
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    let t = b.poll_timeout().expect("deadline");
    assert_eq!(t, now + Duration::from_secs(10));
    b.handle_timeout(t);
    assert!(events(&mut b).contains(&SessionEvent::Closed(CloseReason::HandshakeTimeout)));

    let mut a = session(
        Side::Dialer,
        "BR",
        Role::Spoke,
        Arc::new(OpenAuthenticator),
        now,
    );
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    pump(&mut a, &mut b, now);
    a.handle_timeout(now + Duration::from_secs(10));
    assert!(matches!(frames(&mut a).as_slice(), [Frame::Keepalive(_)]));
    a.handle_timeout(now + Duration::from_secs(35));
    assert!(events(&mut a).contains(&SessionEvent::Closed(CloseReason::IdleTimeout)));
}

#[test]
fn a_message_out_of_order_is_a_protocol_error() {
    let now = Instant::now();
    let mut b = session(
        Side::Acceptor,
        "HQ",
        Role::Hub,
        Arc::new(OpenAuthenticator),
        now,
    );
    let err = b
        .handle_frame(now, Frame::Records(Default::default()))
        .unwrap_err();
    assert_eq!(err.to_string(), "unexpected Records while awaiting Hello");
    assert!(
        matches!(frames(&mut b).as_slice(), [Frame::Refuse(r)] if r.reason == RefuseReason::ProtocolError as i32)
    );
}
