//! SIP messages: a zero-copy parser, typed views of the headers the proxy reads, an editor
//! that writes the forwarded message in one pass, and a Content-Length framer for streams.
//!
//! [`Message::parse`] splits a received buffer into a start line and a list of header byte
//! ranges; nothing is copied and the only allocation is the header index. Typed views
//! ([`Via`], [`NameAddr`], [`Uri`], [`CSeq`]) are parsed on demand from those ranges. The
//! [`Editor`] copies every header the proxy leaves alone byte for byte, so unknown headers,
//! compact names and odd spacing reach the next hop exactly as they arrived.
//!
//! ```text
//!  Bytes ──parse──▶ Message { start line, [(name, value range)], body }
//!                      │ typed views on demand: vias(), cseq(), routes(), ...
//!                      └─Editor { prepend Via, pop Route, Max-Forwards, ... }──finish──▶ Bytes
//! ```

mod edit;
mod framer;
mod lex;
mod name;
mod parse;
mod request;
mod response;
mod uri;
mod views;

#[cfg(test)]
mod tests;

use std::fmt;

use bytes::Bytes;

pub use edit::Editor;
pub use framer::{FrameError, Framer};
pub use lex::{ParamIter, Params};
pub use name::HeaderName;
pub use request::{ack_for, cancel_for};
pub use response::ResponseBuilder;
pub use uri::{Scheme, Uri, UriError};
pub use views::{CSeq, NameAddr, Via};

/// A parsed SIP request or response over a shared, immutable buffer.
#[derive(Clone, Debug)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    /// Offset of the start line (after any leading empty lines).
    start_pos: u32,
    /// End of the start line including its line terminator.
    start_end: u32,
    headers: Vec<Header>,
    /// Start of the empty line that ends the header section.
    head_end: u32,
    body: (u32, u32),
    cseq: Option<CSeq>,
    max_forwards: Option<u32>,
    content_length: Option<u32>,
    /// The topmost Via, parsed while validating.
    top_via: Option<views::ViaParts>,
    /// The From and To tags, found while validating.
    from_tag: Option<(u32, u32)>,
    to_tag: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
enum StartLine {
    Request { method: Method, uri: (u32, u32) },
    Response { status: u16, reason: (u32, u32) },
}

/// One header line: its name, and byte offsets into the message buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) name: HeaderName,
    /// Start of the line (the first byte of the name).
    pub(crate) start: u32,
    pub(crate) name_end: u32,
    /// The value with surrounding whitespace trimmed; folded lines stay inside it.
    pub(crate) value: (u32, u32),
    /// End of the line including its terminator (and any continuation lines).
    pub(crate) end: u32,
}

/// A borrowed view of one header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The recognised name, or [`HeaderName::Other`].
    pub name: HeaderName,
    /// The name exactly as received (`v`, `VIA`, `X-Custom`).
    pub raw_name: &'a [u8],
    /// The trimmed value; folded continuation lines remain inside it.
    pub value: &'a [u8],
}

/// A SIP method. Known methods are matched case-sensitively, as RFC 3261 §7.1 requires.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PUBLISH (RFC 3903)
    Publish,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// UPDATE (RFC 3311)
    Update,
    /// Any other token.
    Extension(Bytes),
}

/// Why a buffer is not an acceptable SIP message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer holds nothing but line breaks.
    #[error("empty message")]
    Empty,
    /// The buffer is larger than the parser accepts.
    #[error("message of {len} bytes is too large")]
    TooLarge {
        /// The buffer length.
        len: usize,
    },
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line")]
    BadStartLine,
    /// The SIP version is not SIP/2.0 (a request gets `505`).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    BadStatusCode,
    /// The Request-URI does not parse.
    #[error("malformed Request-URI: {0}")]
    BadRequestUri(#[from] UriError),
    /// A header line has no colon or an invalid name.
    #[error("malformed header line at byte {offset}")]
    BadHeaderLine {
        /// Offset of the line in the buffer.
        offset: usize,
    },
    /// The buffer ends before the empty line that closes the header section.
    #[error("header section not terminated")]
    UnterminatedHeaders,
    /// The message has more header lines than the parser accepts.
    #[error("too many header lines")]
    TooManyHeaders,
    /// A mandatory header (RFC 3261 §8.1.1) is absent.
    #[error("missing {name} header")]
    MissingHeader {
        /// The canonical header name.
        name: &'static str,
    },
    /// A header the proxy relies on has an invalid value.
    #[error("invalid {name} header")]
    InvalidHeader {
        /// The canonical header name.
        name: &'static str,
    },
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Content-Length is not a non-negative integer, or several disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The body is shorter than Content-Length declares (RFC 3261 §18.3).
    #[error("body of {actual} bytes is shorter than Content-Length {declared}")]
    BodyTooShort {
        /// The Content-Length value.
        declared: u32,
        /// The bytes actually present.
        actual: u32,
    },
}

// === impl Message ===

impl Message {
    /// Parses and validates one message, as received in a UDP datagram or cut by [`Framer`].
    ///
    /// A body longer than Content-Length is truncated to it; a shorter one is an error
    /// (RFC 3261 §18.3). Mandatory headers, the CSeq method and Max-Forwards are checked.
    pub fn parse(buf: Bytes) -> Result<Self, ParseError> {
        let mut msg = parse::split(buf, false)?;
        msg.validate()?;
        Ok(msg)
    }

    /// Splits the start line and headers without validating header values.
    ///
    /// The proxy uses this on a message [`Message::parse`] rejected, to decide whether it can
    /// still form a `400` response from the Via, From, To, Call-ID and CSeq lines. A request
    /// line with another SIP version is accepted here, so that it can be answered `505`.
    pub fn parse_lenient(buf: Bytes) -> Result<Self, ParseError> {
        parse::split(buf, true)
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI bytes; `None` for a response.
    pub fn request_uri_bytes(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI; `None` for a response. It was validated by [`Message::parse`].
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        Uri::parse(self.request_uri_bytes()?).ok()
    }

    /// The status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response, raw (it may be empty or non-UTF-8).
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The message bytes: start line, headers and body (truncated to Content-Length).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.body.1 as usize]
    }

    /// The underlying buffer, shared.
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.headers.iter().map(|h| self.header_ref(h))
    }

    /// The values of every header with this recognised name, in order (one per line).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.slice(h.value))
    }

    /// The first value of a header looked up by its name (long or compact, any case), such as
    /// `X-cisco-dest-route-string`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let kind = HeaderName::from_bytes(name.as_bytes());
        self.headers
            .iter()
            .find(|h| {
                if kind == HeaderName::Other {
                    h.name == HeaderName::Other
                        && self
                            .slice((h.start, h.name_end))
                            .eq_ignore_ascii_case(name.as_bytes())
                } else {
                    h.name == kind
                }
            })
            .map(|h| self.slice(h.value))
    }

    /// True when at least one header of this kind is present.
    pub fn has(&self, name: HeaderName) -> bool {
        self.headers.iter().any(|h| h.name == name)
    }

    /// The CSeq. Always present on a message returned by [`Message::parse`].
    pub fn cseq(&self) -> Option<&CSeq> {
        self.cseq.as_ref()
    }

    /// Max-Forwards, when present (validated by [`Message::parse`]).
    pub fn max_forwards(&self) -> Option<u32> {
        self.max_forwards
    }

    /// Content-Length, when present.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&[u8]> {
        self.header_values(HeaderName::CallId).next()
    }

    /// Every Via value in order, across lines and comma-separated values.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.list_values(HeaderName::Via)
            .map(|(_, v)| Via::parse(v))
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        if let Some(via) = self.top_via.and_then(|p| Via::from_parts(&self.buf, p)) {
            return Ok(via);
        }
        self.vias()
            .next()
            .unwrap_or(Err(ParseError::MissingHeader { name: "Via" }))
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// The From tag, without parsing From again.
    pub fn from_tag(&self) -> Option<&[u8]> {
        // A validated message (it has its CSeq) recorded the tag, or its absence.
        if self.cseq.is_some() {
            return self.from_tag.map(|r| self.slice(r));
        }
        self.from().ok().and_then(|f| f.tag())
    }

    /// The To tag, without parsing To again; its presence marks a request inside a dialog.
    pub fn to_tag(&self) -> Option<&[u8]> {
        if self.cseq.is_some() {
            return self.to_tag.map(|r| self.slice(r));
        }
        self.to().ok().and_then(|t| t.tag())
    }

    /// The Route values in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_values(HeaderName::Route)
            .map(|(_, v)| NameAddr::parse(v, "Route"))
    }

    /// The Record-Route values in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_values(HeaderName::RecordRoute)
            .map(|(_, v)| NameAddr::parse(v, "Record-Route"))
    }

    /// The Contact values in order; a `*` Contact is skipped.
    pub fn contacts(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list_values(HeaderName::Contact)
            .filter(|(_, v)| *v != b"*")
            .map(|(_, v)| NameAddr::parse(v, "Contact"))
    }

    /// The option tags of every header of this kind (Proxy-Require, Require, Supported, ...).
    pub fn option_tags(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.list_values(name).map(|(_, v)| v)
    }

    /// Iterates over `(header index, value)` for each comma-separated value of a list header.
    pub(crate) fn list_values(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        self.headers
            .iter()
            .enumerate()
            .filter(move |(_, h)| h.name == name)
            .flat_map(move |(i, h)| {
                let value = self.slice(h.value);
                lex::CommaSplit::new(value).map(move |(a, b)| (i, &value[a..b]))
            })
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, ParseError> {
        let value = self
            .header_values(name)
            .next()
            .ok_or(ParseError::MissingHeader {
                name: name.as_str(),
            })?;
        NameAddr::parse(value, name.as_str())
    }

    fn header_ref(&self, h: &Header) -> HeaderRef<'_> {
        HeaderRef {
            name: h.name,
            raw_name: self.slice((h.start, h.name_end)),
            value: self.slice(h.value),
        }
    }

    pub(crate) fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.buf[start as usize..end as usize]
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

// === impl Method ===

impl Method {
    /// Classifies a method token; unknown tokens become [`Method::Extension`].
    pub fn from_token(token: &[u8]) -> Self {
        match token {
            b"INVITE" => Self::Invite,
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"OPTIONS" => Self::Options,
            b"REGISTER" => Self::Register,
            b"PRACK" => Self::Prack,
            b"SUBSCRIBE" => Self::Subscribe,
            b"NOTIFY" => Self::Notify,
            b"PUBLISH" => Self::Publish,
            b"INFO" => Self::Info,
            b"REFER" => Self::Refer,
            b"MESSAGE" => Self::Message,
            b"UPDATE" => Self::Update,
            other => Self::Extension(Bytes::copy_from_slice(other)),
        }
    }

    /// The method token.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Invite => b"INVITE",
            Self::Ack => b"ACK",
            Self::Bye => b"BYE",
            Self::Cancel => b"CANCEL",
            Self::Options => b"OPTIONS",
            Self::Register => b"REGISTER",
            Self::Prack => b"PRACK",
            Self::Subscribe => b"SUBSCRIBE",
            Self::Notify => b"NOTIFY",
            Self::Publish => b"PUBLISH",
            Self::Info => b"INFO",
            Self::Refer => b"REFER",
            Self::Message => b"MESSAGE",
            Self::Update => b"UPDATE",
            Self::Extension(b) => b,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}
