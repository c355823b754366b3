//! Stream framing: a 4-byte big-endian length, then that many bytes of one protobuf
//! [`Envelope`].
//!
//! Decoding is incremental: [`FrameDecoder::decode`] returns `Ok(None)` until a whole frame is
//! buffered. A length above the configured maximum is refused before any of the body is
//! buffered, so a peer cannot make us hold more than one maximum-size frame.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message as _;

use super::wire::{Envelope, Frame};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;
/// The default largest frame body accepted (1 MiB).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces a frame larger than we accept.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame body is not a valid protobuf envelope.
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The envelope holds no message this build knows (a newer peer's message type).
    #[error("unknown message type")]
    UnknownMessage,
}

impl DecodeError {
    /// Whether the stream is unusable after this error (the framing itself is lost or the peer
    /// sends garbage). An unknown message type is skipped instead.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::UnknownMessage)
    }
}

/// Splits a byte stream into frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame` bytes (the prefix not counted).
    pub fn new(max_frame: usize) -> Self {
        Self { max: max_frame }
    }

    /// Takes one frame off the front of `buf`, if a whole one is there.
    ///
    /// On `Ok(Some(_))` and on `UnknownMessage` the frame's bytes are consumed; on the other
    /// errors the stream must be closed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(prefix) = buf.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max {
            return Err(DecodeError::TooLarge { len, max: self.max });
        }
        if buf.len() < LENGTH_PREFIX + len {
            buf.reserve(LENGTH_PREFIX + len - buf.len());
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX);
        let body = buf.split_to(len);
        let envelope = Envelope::decode(body.freeze())?;
        envelope.body.map(Some).ok_or(DecodeError::UnknownMessage)
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Appends one frame (prefix and body) to `buf`; returns the bytes written.
pub fn encode(frame: &Frame, buf: &mut BytesMut) -> usize {
    // The oneof's length counts its field key and length: it is the whole envelope.
    let total = frame.encoded_len();
    buf.reserve(LENGTH_PREFIX + total);
    // Our own frames stay far below 4 GiB: the node bounds each batch well under the limit.
    buf.put_u32(total as u32);
    frame.encode(buf);
    LENGTH_PREFIX + total
}

/// The encoded size of a frame, prefix included.
pub fn encoded_len(frame: &Frame) -> usize {
    LENGTH_PREFIX + frame.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::{Keepalive, Record, Records};

    fn records() -> Frame {
        Frame::Records(Records {
            seq: 7,
            origin: "HQ".into(),
            routes: vec!["hq.route".into()],
            records: vec![
                Record {
                    version: 1,
                    uri: "alice@hq.example.com".into(),
                    route: 1,
                },
                Record {
                    version: 2,
                    uri: "bob@hq.example.com".into(),
                    route: 0,
                },
            ],
            repair: false,
        })
    }

    #[test]
    fn round_trips_and_waits_for_whole_frames() {
        let mut buf = BytesMut::new();
        let n = encode(&records(), &mut buf);
        assert_eq!(n, buf.len());
        assert_eq!(n, encoded_len(&records()));
        encode(&Frame::Keepalive(Keepalive {}), &mut buf);
        let whole = buf.clone();
        let dec = FrameDecoder::default();
        // Feed one byte at a time: nothing until the first frame is complete.
        let mut partial = BytesMut::new();
        let mut got = Vec::new();
        for b in whole.iter() {
            partial.put_u8(*b);
            while let Some(f) = dec.decode(&mut partial).expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(got, vec![records(), Frame::Keepalive(Keepalive {})]);
        assert!(partial.is_empty());
    }

    #[test]
    fn refuses_oversized_frame_before_buffering_it() {
        let mut buf = BytesMut::new();
        buf.put_u32(2_000_000);
        let err = FrameDecoder::new(1 << 20).decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLarge {
                len: 2_000_000,
                max: 1 << 20
            }
        );
        assert!(err.is_fatal());
    }

    #[test]
    fn garbage_body_is_malformed() {
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(&[0x0a, 0xff, 0xff]);
        let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn unknown_message_type_is_skipped() {
        // Field 99, varint 1: a message type from a newer peer.
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(&[0x98, 0x06, 0x01]);
        encode(&Frame::Keepalive(Keepalive {}), &mut buf);
        let dec = FrameDecoder::default();
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(!err.is_fatal());
        assert_eq!(
            dec.decode(&mut buf).expect("valid"),
            Some(Frame::Keepalive(Keepalive {}))
        );
    }
}
