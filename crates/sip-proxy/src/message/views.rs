//! Typed views of single header values: Via, name-addr (From, To, Route, Record-Route,
//! Contact) and CSeq. Each borrows from the message buffer.

use std::net::IpAddr;

use super::lex::{self, Params};
use super::{Method, ParseError, Uri};

/// One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=...;rport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    transport: &'a [u8],
    host: &'a str,
    ipv6: bool,
    port: Option<u16>,
    params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value; LWS is allowed around `/`, `:` and `;` as in RFC 4475 *wsinv*.
    pub fn parse(v: &'a [u8]) -> Result<Self, ParseError> {
        const BAD: ParseError = ParseError::InvalidHeader { name: "Via" };
        let (name, pos) = token(v, 0);
        let pos = expect(v, pos, b'/').ok_or(BAD)?;
        let (version, pos) = token(v, pos);
        let pos = expect(v, pos, b'/').ok_or(BAD)?;
        let (transport, pos) = token(v, pos);
        if !name.eq_ignore_ascii_case(b"SIP") || version != b"2.0" || transport.is_empty() {
            return Err(BAD);
        }
        let mut pos = lex::skip_lws(v, pos);
        let (host, ipv6) = if v.get(pos) == Some(&b'[') {
            let close = memchr::memchr(b']', &v[pos..]).ok_or(BAD)? + pos;
            let host = &v[pos + 1..close];
            pos = close + 1;
            (host, true)
        } else {
            let start = pos;
            while pos < v.len()
                && (v[pos].is_ascii_alphanumeric() || matches!(v[pos], b'-' | b'.' | b'_'))
            {
                pos += 1;
            }
            (&v[start..pos], false)
        };
        if host.is_empty() {
            return Err(BAD);
        }
        let host = std::str::from_utf8(host).map_err(|_| BAD)?;
        pos = lex::skip_lws(v, pos);
        let mut port = None;
        if v.get(pos) == Some(&b':') {
            pos = lex::skip_lws(v, pos + 1);
            let start = pos;
            while pos < v.len() && v[pos].is_ascii_digit() {
                pos += 1;
            }
            let n = lex::parse_u32(&v[start..pos]).ok_or(BAD)?;
            port = Some(u16::try_from(n).map_err(|_| BAD)?);
            pos = lex::skip_lws(v, pos);
        }
        let params = match v.get(pos) {
            None => Params::default(),
            Some(b';') => Params::new(&v[pos + 1..]),
            Some(_) => return Err(BAD),
        };
        // `;;` or a trailing `;` leaves an empty parameter, which RFC 4475 *badinv01* rejects.
        if pos < v.len()
            && v[pos + 1..]
                .split(|&b| b == b';')
                .any(|p| lex::trim(p).is_empty())
        {
            return Err(BAD);
        }
        Ok(Self {
            transport,
            host,
            ipv6,
            port,
            params,
        })
    }

    /// The transport token as received (`UDP`, `tcp`, `TLS`, ...).
    pub fn transport(&self) -> &'a [u8] {
        self.transport
    }

    /// The sent-by host without IPv6 brackets.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// True when the sent-by host is an IPv6 reference.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// The sent-by port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// All Via parameters.
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.params.get("branch").flatten()
    }

    /// `None` without `rport`; `Some(None)` for a bare `rport`; `Some(Some(p))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| {
            v.and_then(lex::parse_u32)
                .and_then(|p| u16::try_from(p).ok())
        })
    }

    /// The `received` parameter, when it is an IP address.
    pub fn received(&self) -> Option<IpAddr> {
        let v = self.params.get("received").flatten()?;
        std::str::from_utf8(v)
            .ok()?
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .ok()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(lex::parse_u32)
            .and_then(|t| u8::try_from(t).ok())
    }

    /// True when the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(b"z9hG4bK"))
    }
}

/// Where a parsed Via's parts lie in the message buffer, so that the top Via can be handed out
/// again without parsing it (the proxy asks for it several times per message).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViaParts {
    transport: (u32, u32),
    host: (u32, u32),
    ipv6: bool,
    port: Option<u16>,
    params: (u32, u32),
}

impl<'a> Via<'a> {
    /// The buffer ranges of this Via's parts; `None` unless it borrows from `buf`.
    pub(crate) fn parts(&self, buf: &[u8]) -> Option<ViaParts> {
        let range = |s: &[u8]| -> Option<(u32, u32)> {
            if s.is_empty() {
                return Some((0, 0));
            }
            // Sub-slices of `buf`: the address difference is the offset.
            let start = (s.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
            let end = start.checked_add(s.len()).filter(|&e| e <= buf.len())?;
            Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
        };
        Some(ViaParts {
            transport: range(self.transport)?,
            host: range(self.host.as_bytes())?,
            ipv6: self.ipv6,
            port: self.port,
            params: range(self.params.as_bytes())?,
        })
    }

    /// Rebuilds a Via from [`Via::parts`] over the same buffer.
    pub(crate) fn from_parts(buf: &'a [u8], parts: ViaParts) -> Option<Self> {
        let get = |(a, b): (u32, u32)| buf.get(a as usize..b as usize);
        Some(Self {
            transport: get(parts.transport)?,
            host: std::str::from_utf8(get(parts.host)?).ok()?,
            ipv6: parts.ipv6,
            port: parts.port,
            params: Params::new(get(parts.params)?),
        })
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Route, Record-Route, Contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    display: Option<&'a [u8]>,
    uri: Uri<'a>,
    params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value. `header` names the header in the error.
    pub fn parse(v: &'a [u8], header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::InvalidHeader { name: header };
        let v = lex::trim(v);
        let (display, uri, rest) = if let Some(lt) = angle_start(v) {
            let gt = memchr::memchr(b'>', &v[lt..]).ok_or(bad.clone())? + lt;
            let display = lex::trim(&v[..lt]);
            let display = (!display.is_empty()).then_some(display);
            (display, &v[lt + 1..gt], &v[gt + 1..])
        } else {
            // addr-spec form: a `;` starts the header parameters (RFC 3261 §20.10).
            let end = memchr::memchr(b';', v).unwrap_or(v.len());
            (None, lex::trim(&v[..end]), &v[end..])
        };
        let uri = Uri::parse(uri).map_err(|_| bad.clone())?;
        let rest = lex::trim(rest);
        let params = match rest.first() {
            None => Params::default(),
            Some(b';') => Params::new(&rest[1..]),
            Some(_) => return Err(bad),
        };
        Ok(Self {
            display,
            uri,
            params,
        })
    }

    /// The display name as received (quoted or a token sequence), if any.
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display
    }

    /// The URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// The header parameters after the URI.
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get("tag").flatten()
    }
}

/// Finds the `<` that opens a name-addr, skipping a quoted display name.
fn angle_start(v: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut in_quote = false;
    while i < v.len() {
        match v[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The CSeq header: sequence number and method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (less than 2**31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1234 INVITE` (leading zeros and folded LWS allowed).
    pub fn parse(v: &[u8]) -> Option<Self> {
        let v = lex::trim(v);
        let split = v.iter().position(|&b| lex::is_lws(b))?;
        let seq = lex::parse_u32(&v[..split]).filter(|&n| n < 1 << 31)?;
        let method = lex::trim(&v[split..]);
        if method.is_empty() || !method.iter().all(|&b| lex::is_token(b)) {
            return None;
        }
        Some(Self {
            seq,
            method: Method::from_token(method),
        })
    }
}

fn token(v: &[u8], pos: usize) -> (&[u8], usize) {
    let start = lex::skip_lws(v, pos);
    let mut end = start;
    while end < v.len() && lex::is_token(v[end]) {
        end += 1;
    }
    (&v[start..end], end)
}

fn expect(v: &[u8], pos: usize, c: u8) -> Option<usize> {
    let pos = lex::skip_lws(v, pos);
    (v.get(pos) == Some(&c)).then_some(pos + 1)
}
