//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed from a byte slice without copying.
//!
//! Other schemes (`http:`, `mailto:`, ...) parse as [`Scheme::Other`] with an opaque body, so
//! the proxy can answer `416 Unsupported URI Scheme` rather than `400`.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use super::lex::{self, Params};

/// The scheme of a [`Uri`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other syntactically valid scheme; the proxy does not route these.
    Other,
}

/// A parsed URI borrowing from the message buffer.
///
/// For `tel:` URIs the subscriber number is the [`user`](Self::user) and the host is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a [u8],
    scheme: Scheme,
    user: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    host: &'a str,
    ipv6: bool,
    port: Option<u16>,
    params: Params<'a>,
    headers: Option<&'a [u8]>,
}

/// Why a URI could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The URI is empty.
    #[error("empty URI")]
    Empty,
    /// No `scheme:` prefix, or the scheme has invalid characters.
    #[error("missing or invalid URI scheme")]
    BadScheme,
    /// The URI contains whitespace.
    #[error("whitespace inside URI")]
    Whitespace,
    /// The user part is empty (`sip:@host`).
    #[error("empty user part")]
    EmptyUser,
    /// The host is missing or has invalid characters.
    #[error("missing or invalid host")]
    BadHost,
    /// The port is not a number in 0..=65535.
    #[error("invalid port")]
    BadPort,
}

impl<'a> Uri<'a> {
    /// Parses a URI. Leading and trailing whitespace is not allowed; trim it first.
    pub fn parse(raw: &'a [u8]) -> Result<Self, UriError> {
        if raw.is_empty() {
            return Err(UriError::Empty);
        }
        if raw.iter().any(|&b| lex::is_lws(b)) {
            return Err(UriError::Whitespace);
        }
        let colon = memchr::memchr(b':', raw).ok_or(UriError::BadScheme)?;
        let scheme_raw = &raw[..colon];
        let valid_scheme = scheme_raw.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme_raw
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::BadScheme);
        }
        let scheme = if scheme_raw.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_raw.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_raw.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let rest = &raw[colon + 1..];
        let mut uri = Self {
            raw,
            scheme,
            user: None,
            password: None,
            host: "",
            ipv6: false,
            port: None,
            params: Params::default(),
            headers: None,
        };
        match scheme {
            Scheme::Other => {}
            Scheme::Tel => {
                let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
                if end == 0 {
                    return Err(UriError::EmptyUser);
                }
                uri.user = Some(&rest[..end]);
                uri.params = Params::new(rest.get(end + 1..).unwrap_or_default());
            }
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest)?,
        }
        Ok(uri)
    }

    fn parse_sip(&mut self, rest: &'a [u8]) -> Result<(), UriError> {
        // The user part may contain `;`, `?` and `:` but never an unescaped `@`, and neither
        // host, parameters nor headers may contain one: the first `@` ends the userinfo.
        let hostpart = match memchr::memchr(b'@', rest) {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match memchr::memchr(b':', userinfo) {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(UriError::EmptyUser);
                }
                self.user = Some(user);
                self.password = password;
                &rest[at + 1..]
            }
            None => rest,
        };
        let (host, mut pos) = if hostpart.first() == Some(&b'[') {
            let close = memchr::memchr(b']', hostpart).ok_or(UriError::BadHost)?;
            let inner = &hostpart[1..close];
            if inner.is_empty()
                || !inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UriError::BadHost);
            }
            self.ipv6 = true;
            (inner, close + 1)
        } else {
            let end = hostpart
                .iter()
                .position(|&b| matches!(b, b':' | b';' | b'?'))
                .unwrap_or(hostpart.len());
            let host = &hostpart[..end];
            if host.is_empty()
                || !host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            {
                return Err(UriError::BadHost);
            }
            (host, end)
        };
        // Only ASCII passed the checks above, so this cannot fail.
        self.host = std::str::from_utf8(host).map_err(|_| UriError::BadHost)?;
        if hostpart.get(pos) == Some(&b':') {
            let start = pos + 1;
            let end = hostpart[start..]
                .iter()
                .position(|&b| matches!(b, b';' | b'?'))
                .map_or(hostpart.len(), |p| start + p);
            let port = lex::parse_u32(&hostpart[start..end]).ok_or(UriError::BadPort)?;
            self.port = Some(u16::try_from(port).map_err(|_| UriError::BadPort)?);
            pos = end;
        }
        let tail = &hostpart[pos..];
        let (params, headers) = match memchr::memchr(b'?', tail) {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        match params.first() {
            None => {}
            Some(b';') => self.params = Params::new(&params[1..]),
            Some(_) => return Err(UriError::BadHost),
        }
        self.headers = headers;
        Ok(())
    }

    /// The whole URI as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The user part as received, still escaped (`%41lice`); for `tel:` the number.
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }

    /// The user part with `%HH` escapes decoded (RFC 3261 §19.1.4).
    pub fn user_decoded(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(lex::percent_decode)
    }

    /// The password, if the userinfo has one.
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password
    }

    /// The host without IPv6 brackets; empty for `tel:` and unsupported schemes.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// True when the host was an IPv6 reference (`[2001:db8::1]`).
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Compares the host case-insensitively, as RFC 3261 §19.1.4 requires.
    pub fn host_eq(&self, other: &str) -> bool {
        self.host
            .eq_ignore_ascii_case(other.trim_start_matches('[').trim_end_matches(']'))
    }

    /// The host as an IP address, when it is a literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters (`;transport=tcp;lr`).
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// Looks up one URI parameter; `Some(None)` for a flag such as `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }

    /// True when the URI carries the `lr` parameter (a loose router, RFC 3261 §19.1.1).
    pub fn is_loose_router(&self) -> bool {
        self.params.contains("lr")
    }

    /// The headers part after `?`, raw.
    pub fn headers(&self) -> Option<&'a [u8]> {
        self.headers
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_with_params_and_headers() {
        let u = Uri::parse(
            b"sip:+1-415-555-0123;npdi;rn=+14155550000@gw.example.com;user=phone?X-Foo=bar",
        )
        .unwrap();
        assert_eq!(u.user(), Some(&b"+1-415-555-0123;npdi;rn=+14155550000"[..]));
        assert_eq!(u.host(), "gw.example.com");
        assert_eq!(u.param("user"), Some(Some(&b"phone"[..])));
        assert_eq!(u.headers(), Some(&b"X-Foo=bar"[..]));
    }

    #[test]
    fn ipv6_host_with_and_without_port() {
        let u = Uri::parse(b"sip:alice@[2001:db8::10]:5070;transport=tcp").unwrap();
        assert_eq!(u.host(), "2001:db8::10");
        assert!(u.is_ipv6());
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.host_ip(), Some("2001:db8::10".parse().unwrap()));
        let u = Uri::parse(b"sip:[2001:db8::10]").unwrap();
        assert_eq!(u.port(), None);
        assert!(u.user().is_none());
    }

    #[test]
    fn escaped_user_decodes() {
        let u = Uri::parse(b"sip:%41lice@Example.COM").unwrap();
        assert_eq!(u.user(), Some(&b"%41lice"[..]));
        assert_eq!(u.user_decoded().as_deref(), Some(&b"Alice"[..]));
        assert!(u.host_eq("example.com"));
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some(&b"+1-201-555-0123"[..]));
        let u = Uri::parse(b"http://example.com/").unwrap();
        assert_eq!(u.scheme(), Scheme::Other);
        assert_eq!(Uri::parse(b"sip:alice@host:99999"), Err(UriError::BadPort));
        assert_eq!(Uri::parse(b"sip:alice@"), Err(UriError::BadHost));
        assert_eq!(Uri::parse(b"nocolon"), Err(UriError::BadScheme));
        assert_eq!(Uri::parse(b"sip:a b@c"), Err(UriError::Whitespace));
    }

    #[test]
    fn password_and_loose_router() {
        let u = Uri::parse(b"sips:bob:secret@proxy.example.net:5061;lr").unwrap();
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.password(), Some(&b"secret"[..]));
        assert!(u.is_loose_router());
    }
}
