//! The network password, proven by challenge-response in both directions and bound to the TLS
//! session.
//!
//! Each side sends a random 32-byte [`Nonce`] in its Hello. Each side then sends a
//! [`PasswordProof`] computed by [`NetworkKey::prove`] over a [`Transcript`]:
//!
//! ```text
//! key   = PBKDF2-HMAC-SHA256(password, salt = "ils-edge network password", 100 000 rounds)
//! tag(b)= HMAC-SHA256(key, label(side) || nonce(prover) || nonce(verifier)
//!                          || u8 len || cluster ID(prover) || u8 len || cluster ID(verifier)
//!                          || u16 len (big-endian) || b)
//! proof = tag(channel binding) || tag(empty)          (64 bytes)
//! ```
//!
//! `label` is `ils-edge initiator` for the side that opened the connection and
//! `ils-edge responder` for the side that accepted it, so a proof cannot be reflected back. The
//! channel binding is 32 bytes of TLS exporter output (RFC 5705, label
//! `EXPORTER-ils-edge-password`, no context), or empty over plain TCP. A relay that terminates
//! TLS on both legs sees two different exporter values, so the bound tag fails; when the
//! unbound tag still verifies, the refusal says the connection is relayed
//! ([`AuthError::ChannelBindingMismatch`]) instead of blaming the password.
//!
//! Replay: the verifier's own fresh nonce is part of what the prover signs, so a recorded proof
//! never verifies again. The password itself never leaves the edge.
//!
//! Ordering: the initiator sends its proof first; the responder verifies it before sending its
//! own. A scanner that connects without the password thus never obtains a proof to guess
//! passwords against offline.

use std::fmt;

use dialplan::ClusterId;
use ring::rand::SecureRandom;
use ring::{hmac, pbkdf2};

use super::AuthError;

/// PBKDF2 salt (fixed: one network, one password).
const KDF_SALT: &[u8] = b"ils-edge network password";
/// PBKDF2 rounds: derived once at start, and slows offline guessing from a captured proof.
const KDF_ROUNDS: u32 = 100_000;
/// The TLS exporter label of the channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-ils-edge-password";

/// Which end of the connection this edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This edge opened the connection (TLS client).
    Initiator,
    /// This edge accepted the connection (TLS server).
    Responder,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Self::Initiator => Self::Responder,
            Self::Responder => Self::Initiator,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Self::Initiator => b"ils-edge initiator",
            Self::Responder => b"ils-edge responder",
        }
    }
}

/// The key derived from the network password. Derive it once at start ([`Self::derive`] is
/// deliberately slow).
#[derive(Clone)]
pub struct NetworkKey {
    key: hmac::Key,
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

impl NetworkKey {
    /// Derives the key from the network password.
    pub fn derive(password: &str) -> Self {
        let mut key = [0u8; 32];
        let rounds = std::num::NonZeroU32::new(KDF_ROUNDS).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            KDF_SALT,
            password.as_bytes(),
            &mut key,
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }
    }

    /// This edge's proof for the transcript.
    pub fn prove(&self, t: &Transcript<'_>) -> PasswordProof {
        let bound = self.tag(t.side, t, t.binding.as_bytes());
        let unbound = self.tag(t.side, t, &[]);
        let mut out = [0u8; PasswordProof::LEN];
        out[..32].copy_from_slice(bound.as_ref());
        out[32..].copy_from_slice(unbound.as_ref());
        PasswordProof(out)
    }

    /// Verifies the peer's proof for the transcript (as seen from this edge), in constant time.
    pub fn verify_peer(&self, t: &Transcript<'_>, proof: &PasswordProof) -> Result<(), AuthError> {
        let peer = t.peer_view();
        let bound_msg = message(peer.side, &peer, t.binding.as_bytes());
        if hmac::verify(&self.key, &bound_msg, &proof.0[..32]).is_ok() {
            return Ok(());
        }
        let unbound_msg = message(peer.side, &peer, &[]);
        if !t.binding.as_bytes().is_empty()
            && hmac::verify(&self.key, &unbound_msg, &proof.0[32..]).is_ok()
        {
            return Err(AuthError::ChannelBindingMismatch);
        }
        Err(AuthError::WrongPassword)
    }

    fn tag(&self, side: Side, t: &Transcript<'_>, binding: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, &message(side, t, binding))
    }
}

/// The values both sides sign, as seen from one side.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// Which end this edge is.
    pub side: Side,
    /// The nonce this edge sent in its Hello.
    pub own_nonce: &'a Nonce,
    /// The nonce the peer sent in its Hello.
    pub peer_nonce: &'a Nonce,
    /// This edge's cluster ID.
    pub own_id: &'a ClusterId,
    /// The cluster ID the peer claims in its Hello.
    pub peer_id: &'a ClusterId,
    /// The channel binding of this connection.
    pub binding: &'a ChannelBinding,
}

impl<'a> Transcript<'a> {
    fn peer_view(&self) -> Self {
        Self {
            side: self.side.peer(),
            own_nonce: self.peer_nonce,
            peer_nonce: self.own_nonce,
            own_id: self.peer_id,
            peer_id: self.own_id,
            binding: self.binding,
        }
    }
}

fn message(side: Side, t: &Transcript<'_>, binding: &[u8]) -> Vec<u8> {
    let label = side.label();
    let own = t.own_id.as_str().as_bytes();
    let peer = t.peer_id.as_str().as_bytes();
    let mut msg = Vec::with_capacity(label.len() + 64 + own.len() + peer.len() + 4 + binding.len());
    msg.extend_from_slice(label);
    msg.extend_from_slice(&t.own_nonce.0);
    msg.extend_from_slice(&t.peer_nonce.0);
    // Cluster IDs are at most 50 bytes and the binding 32, so the prefixes cannot overflow.
    msg.push(u8::try_from(own.len()).unwrap_or(u8::MAX));
    msg.extend_from_slice(own);
    msg.push(u8::try_from(peer.len()).unwrap_or(u8::MAX));
    msg.extend_from_slice(peer);
    msg.extend_from_slice(
        &u16::try_from(binding.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    msg.extend_from_slice(binding);
    msg
}

/// A random 32-byte challenge, fresh for every connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; 32]);

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl Nonce {
    /// Draws a nonce from the system's secure random source.
    pub fn random() -> Self {
        let mut n = [0u8; 32];
        // The system RNG fails only when the OS cannot provide randomness at all; fall back to
        // a time-derived value so that the handshake still differs per connection.
        if ring::rand::SystemRandom::new().fill(&mut n).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let d = ring::digest::digest(&ring::digest::SHA256, &t.to_be_bytes());
            n.copy_from_slice(d.as_ref());
        }
        Self(n)
    }

    /// A nonce received from a peer; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

/// A password proof as sent on the wire (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordProof(pub [u8; 64]);

impl fmt::Debug for PasswordProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordProof(..)")
    }
}

impl PasswordProof {
    /// Length on the wire.
    pub const LEN: usize = 64;

    /// A proof received from a peer.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AuthError> {
        <[u8; 64]>::try_from(bytes)
            .map(Self)
            .map_err(|_| AuthError::MalformedProof {
                len: bytes.len(),
                expected: Self::LEN,
            })
    }

    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

/// What ties a password proof to one connection.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Plain TCP: nothing to bind to (allowed only with `allow_plaintext_password = true`).
    None,
    /// 32 bytes of TLS exporter output for [`EXPORTER_LABEL`].
    Tls([u8; 32]),
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("ChannelBinding::None"),
            Self::Tls(_) => f.write_str("ChannelBinding::Tls(..)"),
        }
    }
}

impl ChannelBinding {
    /// The bytes mixed into the proof (empty for plain TCP).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::None => &[],
            Self::Tls(b) => b,
        }
    }

    /// The binding of a TLS server connection.
    pub fn from_server(conn: &rustls::ServerConnection) -> Result<Self, AuthError> {
        conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .map(Self::Tls)
            .map_err(AuthError::Tls)
    }

    /// The binding of a TLS client connection.
    pub fn from_client(conn: &rustls::ClientConnection) -> Result<Self, AuthError> {
        conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .map(Self::Tls)
            .map_err(AuthError::Tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    #[test]
    fn proofs_verify_both_ways_and_fail_on_any_change() {
        let key = NetworkKey::derive("s3cret");
        let (a, b) = (Nonce::random(), Nonce::random());
        let (hq, br) = (id("HQ"), id("BR"));
        let binding = ChannelBinding::Tls([7; 32]);
        let at_hq = Transcript {
            side: Side::Responder,
            own_nonce: &a,
            peer_nonce: &b,
            own_id: &hq,
            peer_id: &br,
            binding: &binding,
        };
        let at_br = Transcript {
            side: Side::Initiator,
            own_nonce: &b,
            peer_nonce: &a,
            own_id: &br,
            peer_id: &hq,
            binding: &binding,
        };
        let br_proof = key.prove(&at_br);
        key.verify_peer(&at_hq, &br_proof).unwrap();
        key.verify_peer(&at_br, &key.prove(&at_hq)).unwrap();
        // Reflection: BR's own proof sent back to BR fails.
        assert!(matches!(
            key.verify_peer(&at_br, &br_proof),
            Err(AuthError::WrongPassword)
        ));
        // Replay with a fresh nonce at HQ fails.
        let fresh = Nonce::random();
        let replay = Transcript {
            own_nonce: &fresh,
            ..at_hq
        };
        assert!(key.verify_peer(&replay, &br_proof).is_err());
        // Another binding: the password is right, the session differs.
        let other = ChannelBinding::Tls([8; 32]);
        let relayed = Transcript {
            binding: &other,
            ..at_hq
        };
        assert!(matches!(
            key.verify_peer(&relayed, &br_proof),
            Err(AuthError::ChannelBindingMismatch)
        ));
        // Another password.
        let wrong = NetworkKey::derive("guess");
        assert!(matches!(
            wrong.verify_peer(&at_hq, &br_proof),
            Err(AuthError::WrongPassword)
        ));
        assert!(matches!(
            PasswordProof::from_slice(&[0; 10]),
            Err(AuthError::MalformedProof { len: 10, .. })
        ));
    }
}
