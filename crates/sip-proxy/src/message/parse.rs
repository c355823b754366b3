//! The splitter: start line, header lines (with folding and bare LF), body; then validation of
//! the headers every element relies on (RFC 3261 §7, §8.1.1, §18.3).

use bytes::Bytes;

use super::lex;
use super::views::{CSeq, NameAddr, Via};
use super::{Header, HeaderName, Message, Method, ParseError, StartLine, Uri};

/// Splits `buf` into start line, header index and body without validating header values.
pub(super) fn split(buf: Bytes, lenient: bool) -> Result<Message, ParseError> {
    if buf.len() > MAX_LEN {
        return Err(ParseError::TooLarge { len: buf.len() });
    }
    let b = &buf[..];
    // RFC 3261 §7.5: empty lines before the start line are ignored.
    let mut pos = 0;
    while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
        pos += 1;
    }
    if pos == b.len() {
        return Err(ParseError::Empty);
    }
    let first = pos;
    let nl = memchr::memchr(b'\n', &b[pos..]).ok_or(ParseError::UnterminatedHeaders)? + pos;
    let line_end = if nl > pos && b[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let start = start_line(b, pos, line_end, lenient)?;
    let start_end = nl + 1;

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    pos = start_end;
    let head_end = loop {
        let Some(rel) = memchr::memchr(b'\n', &b[pos..]) else {
            return Err(ParseError::UnterminatedHeaders);
        };
        let nl = pos + rel;
        let content_end = if nl > pos && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if content_end == pos {
            break pos;
        }
        if b[pos] == b' ' || b[pos] == b'\t' {
            // A continuation line: folded into the previous header's value (§7.3.1).
            let Some(last) = headers.last_mut() else {
                return Err(ParseError::BadHeaderLine { offset: pos });
            };
            let (a, z) = lex::trim_range(&b[pos..content_end]);
            if a < z {
                if last.value.0 == last.value.1 {
                    last.value.0 = as_u32(pos + a);
                }
                last.value.1 = as_u32(pos + z);
            }
            last.end = as_u32(nl + 1);
        } else {
            let line = &b[pos..content_end];
            let colon = memchr::memchr(b':', line);
            let mut name_end = colon.unwrap_or(0);
            while name_end > 0 && (line[name_end - 1] == b' ' || line[name_end - 1] == b'\t') {
                name_end -= 1;
            }
            let name = &line[..name_end];
            let Some(colon) =
                colon.filter(|_| !name.is_empty() && name.iter().all(|&c| lex::is_token(c)))
            else {
                if lenient {
                    // Only to answer 400: a broken line is skipped, the rest may still name
                    // where the answer goes.
                    pos = nl + 1;
                    continue;
                }
                return Err(ParseError::BadHeaderLine { offset: pos });
            };
            if headers.len() >= MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let (a, z) = lex::trim_range(&line[colon + 1..]);
            let value_start = pos + colon + 1 + a;
            headers.push(Header {
                name: HeaderName::from_bytes(name),
                start: as_u32(pos),
                name_end: as_u32(pos + name_end),
                value: (as_u32(value_start), as_u32(pos + colon + 1 + z)),
                end: as_u32(nl + 1),
            });
        }
        pos = nl + 1;
    };
    let body_start = memchr::memchr(b'\n', &b[head_end..]).map_or(b.len(), |r| head_end + r + 1);
    Ok(Message {
        start,
        start_pos: as_u32(first),
        start_end: as_u32(start_end),
        headers,
        head_end: as_u32(head_end),
        body: (as_u32(body_start), as_u32(b.len())),
        cseq: None,
        max_forwards: None,
        content_length: None,
        top_via: None,
        from_tag: None,
        to_tag: None,
        buf,
    })
}

fn start_line(b: &[u8], start: usize, end: usize, lenient: bool) -> Result<StartLine, ParseError> {
    let line = &b[start..end];
    if line.len() > 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
        if !line[..sp].eq_ignore_ascii_case(VERSION) {
            return Err(ParseError::UnsupportedVersion);
        }
        let code = line.get(sp + 1..sp + 4).ok_or(ParseError::BadStatusCode)?;
        if !code.iter().all(u8::is_ascii_digit) || line.get(sp + 4).is_some_and(|&c| c != b' ') {
            return Err(ParseError::BadStatusCode);
        }
        let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        let reason_start = (start + sp + 5).min(end);
        return Ok(StartLine::Response {
            status,
            reason: (as_u32(reason_start), as_u32(end)),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp1 = memchr::memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::BadStartLine)?;
    let method = &line[..sp1];
    if sp1 == sp2 || method.is_empty() || !method.iter().all(|&c| lex::is_token(c)) {
        return Err(ParseError::BadStartLine);
    }
    let version = &line[sp2 + 1..];
    let other_version = version.len() > 4 && version[..4].eq_ignore_ascii_case(b"SIP/");
    let accepted = version.eq_ignore_ascii_case(VERSION) || (lenient && other_version);
    if !accepted {
        return if other_version {
            Err(ParseError::UnsupportedVersion)
        } else {
            Err(ParseError::BadStartLine)
        };
    }
    let uri = &line[sp1 + 1..sp2];
    // Leniently (only to answer 400) a Request-URI that does not parse is kept as bytes.
    if !lenient {
        Uri::parse(uri)?;
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: (as_u32(start + sp1 + 1), as_u32(start + sp2)),
    })
}

impl Message {
    /// Checks the headers every element relies on and fixes the body to Content-Length.
    pub(super) fn validate(&mut self) -> Result<(), ParseError> {
        let mut via = false;
        let mut top_via = None;
        let mut from_tag = None;
        let mut to_tag = None;
        let mut from = 0;
        let mut to = 0;
        let mut call_id = 0;
        let mut cseq = None;
        let mut max_forwards = None;
        let mut content_length: Option<u32> = None;
        for h in &self.headers {
            let value = &self.buf[h.value.0 as usize..h.value.1 as usize];
            match h.name {
                HeaderName::Via => {
                    via = true;
                    // RFC 3261 §20.42: a Via line holds at least one value; a quote opens a
                    // quoted-string that must close. Either flaw would make the parser and the
                    // editor disagree on which Via is on top, or where its parameters end.
                    let (a, z) = lex::trim_range(value);
                    if a == z || !lex::quotes_balanced(value) {
                        return Err(ParseError::InvalidHeader { name: "Via" });
                    }
                    for (a, b) in lex::CommaSplit::new(value) {
                        let parsed = Via::parse(&value[a..b])?;
                        if top_via.is_none() {
                            top_via = parsed.parts(&self.buf);
                        }
                    }
                }
                HeaderName::From => {
                    from += 1;
                    from_tag = tag_range(&self.buf, NameAddr::parse(value, "From")?.tag());
                }
                HeaderName::To => {
                    to += 1;
                    to_tag = tag_range(&self.buf, NameAddr::parse(value, "To")?.tag());
                }
                HeaderName::CallId => call_id += usize::from(!value.is_empty()),
                HeaderName::CSeq => {
                    if cseq.is_some() {
                        return Err(ParseError::InvalidHeader { name: "CSeq" });
                    }
                    cseq =
                        Some(CSeq::parse(value).ok_or(ParseError::InvalidHeader { name: "CSeq" })?);
                }
                HeaderName::MaxForwards if max_forwards.is_none() => {
                    let n = lex::parse_u32(value).filter(|&n| n <= 255).ok_or(
                        ParseError::InvalidHeader {
                            name: "Max-Forwards",
                        },
                    )?;
                    max_forwards = Some(n);
                }
                HeaderName::ContentLength => {
                    let n = lex::parse_u32(value).ok_or(ParseError::BadContentLength)?;
                    if content_length.is_some_and(|c| c != n) {
                        return Err(ParseError::BadContentLength);
                    }
                    content_length = Some(n);
                }
                _ => {}
            }
        }
        if !via {
            return Err(ParseError::MissingHeader { name: "Via" });
        }
        if cseq.is_none() {
            return Err(ParseError::MissingHeader { name: "CSeq" });
        }
        for (count, name) in [(from, "From"), (to, "To"), (call_id, "Call-ID")] {
            match count {
                0 => return Err(ParseError::MissingHeader { name }),
                1 => {}
                _ => return Err(ParseError::InvalidHeader { name }),
            }
        }
        if let (Some(m), Some(c)) = (self.method(), &cseq)
            && *m != c.method
        {
            return Err(ParseError::CSeqMethodMismatch);
        }
        if let Some(declared) = content_length {
            let actual = self.body.1 - self.body.0;
            if declared > actual {
                return Err(ParseError::BodyTooShort { declared, actual });
            }
            // RFC 3261 §18.3: bytes past Content-Length are discarded.
            self.body.1 = self.body.0 + declared;
        }
        self.cseq = cseq;
        self.max_forwards = max_forwards;
        self.content_length = content_length;
        self.top_via = top_via;
        self.from_tag = from_tag;
        self.to_tag = to_tag;
        Ok(())
    }
}

/// The buffer range of a tag borrowed from `buf`.
fn tag_range(buf: &[u8], tag: Option<&[u8]>) -> Option<(u32, u32)> {
    let tag = tag?;
    // `tag` borrows from `buf`, so the subtraction gives its offset.
    let start = (tag.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    (start + tag.len() <= buf.len()).then(|| (as_u32(start), as_u32(start + tag.len())))
}

/// Offsets fit: [`split`] rejects buffers over [`MAX_LEN`].
fn as_u32(n: usize) -> u32 {
    n as u32
}

const VERSION: &[u8] = b"SIP/2.0";
/// Larger than any datagram; stream messages are capped lower by the framer.
const MAX_LEN: usize = 1 << 20;
const MAX_HEADERS: usize = 256;
