//! Message framing for TCP and TLS (RFC 3261 §18.3): headers up to the empty line, then exactly
//! Content-Length bytes of body. CRLF keepalives (RFC 5626 §3.5.1) between messages are
//! skipped, and a size cap keeps a hostile peer from growing the buffer without bound.

use bytes::{Bytes, BytesMut};

use super::{HeaderName, Message, ParseError, lex};

/// Cuts complete messages off the front of a stream buffer.
#[derive(Clone, Copy, Debug)]
pub struct Framer {
    max_size: usize,
}

/// Why the stream cannot go on; the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header section or the whole message exceeds the size cap.
    #[error("message exceeds {max} bytes")]
    TooLarge {
        /// The configured cap.
        max: usize,
    },
    /// A message on a stream has no Content-Length, so its end cannot be found.
    #[error("missing Content-Length on a stream")]
    MissingContentLength,
    /// Content-Length is not a number.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The framed message does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl Framer {
    /// A framer accepting messages of at most `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self { max_size }
    }

    /// Returns the next complete message, `Ok(None)` when more bytes are needed.
    ///
    /// On `Err` the buffer is left in an unknown state and the connection should be closed,
    /// except for [`FrameError::Parse`], after which framing can go on with the next message.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        match self.decode_frame(buf)? {
            Some(frame) => Ok(Some(Message::parse(frame)?)),
            None => Ok(None),
        }
    }

    /// Like [`Framer::decode`], but returns the framed bytes unparsed, so the caller can
    /// answer a message that frames but does not parse with `400`.
    pub fn decode_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let skip = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let _ = buf.split_to(skip);
        if buf.is_empty() {
            return Ok(None);
        }
        let Some(head_len) = header_section_len(buf) else {
            if buf.len() > self.max_size {
                return Err(FrameError::TooLarge { max: self.max_size });
            }
            return Ok(None);
        };
        let content_length = content_length(&buf[..head_len])?;
        let total = head_len + content_length;
        if total > self.max_size {
            return Err(FrameError::TooLarge { max: self.max_size });
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        Ok(Some(buf.split_to(total).freeze()))
    }
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SIZE)
    }
}

/// Length of the start line and headers including the empty line, if it has arrived.
fn header_section_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while let Some(rel) = memchr::memchr(b'\n', &buf[pos..]) {
        let nl = pos + rel;
        // An empty line is "\n" right after the previous line end, or "\r\n".
        let line = &buf[pos..nl];
        if (line.is_empty() || line == b"\r") && pos > 0 {
            return Some(nl + 1);
        }
        pos = nl + 1;
    }
    None
}

/// Finds Content-Length (long or compact form) in a header section.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        if HeaderName::from_bytes(lex::trim(&line[..colon])) == HeaderName::ContentLength {
            let n = lex::parse_u32(lex::trim(&line[colon + 1..]))
                .ok_or(FrameError::BadContentLength)?;
            return usize::try_from(n).map_err(|_| FrameError::BadContentLength);
        }
    }
    Err(FrameError::MissingContentLength)
}

/// 64 KiB, the largest UDP datagram, is plenty for signalling.
const DEFAULT_MAX_SIZE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 4\r\n\r\nbody";

    #[test]
    fn frames_across_partial_reads_and_keepalives() {
        let framer = Framer::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(&MSG[..30]);
        assert!(framer.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&MSG[30..MSG.len() - 2]);
        assert!(framer.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&MSG[MSG.len() - 2..]);
        buf.extend_from_slice(MSG);
        let first = framer.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.body(), b"body");
        let second = framer.decode(&mut buf).unwrap().unwrap();
        assert_eq!(second.as_bytes(), MSG);
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_oversize_and_missing_length() {
        let framer = Framer::new(64);
        let mut buf = BytesMut::from(&[b'A'; 100][..]);
        assert!(matches!(
            framer.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        let framer = Framer::default();
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..]);
        assert!(matches!(
            framer.decode(&mut buf),
            Err(FrameError::MissingContentLength)
        ));
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nl: 4000000000\r\n\r\n"[..]);
        assert!(matches!(
            framer.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
