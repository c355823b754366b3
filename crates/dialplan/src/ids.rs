//! Identity values that are valid by construction: cluster IDs, route strings, directory URIs,
//! directory numbers and configuration names.
//!
//! Each type's constructor applies CUCM's rule for it (see PRODUCT.md) and nothing else can
//! build one, so a value that exists is valid.

use std::fmt;
use std::str::FromStr;

/// Why a cluster ID, route string, directory URI, number or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The value is longer than its limit.
    #[error("too long: {len} characters, at most {max}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length found.
        len: usize,
    },
    /// The value holds a character its kind does not allow.
    #[error("character {ch:?} at position {at} is not allowed (allowed: {allowed})")]
    BadChar {
        /// The character refused.
        ch: char,
        /// Its position, counted in characters from 0.
        at: usize,
        /// The allowed set, for the message.
        allowed: &'static str,
    },
    /// `StandAloneCluster` is CUCM's default cluster ID and cannot take part in ILS.
    #[error(
        "cluster ID `StandAloneCluster` is CUCM's default and cannot join an ILS network as {role}"
    )]
    DefaultClusterId {
        /// The role that was asked for.
        role: Role,
    },
    /// A route string segment between two dashes holds only digits (CUCM refuses `abc-123-def`).
    #[error("segment {segment:?} between two dashes is all digits")]
    AllDigitSegment {
        /// The offending segment.
        segment: String,
    },
    /// A directory URI lacks the `@` between user and host.
    #[error("a directory URI needs the form user@host")]
    MissingAt,
    /// A directory URI has an empty user part.
    #[error("the user part is empty")]
    EmptyUser,
    /// A directory URI has an empty or malformed host part.
    #[error("the host part {host:?} is not a host name or IP address")]
    BadHost {
        /// The host as given.
        host: String,
    },
    /// A `%` escape is not followed by two hexadecimal digits.
    #[error("bad percent-escape at position {at}")]
    BadEscape {
        /// Byte offset of the `%`.
        at: usize,
    },
    /// The URI scheme is not `sip` or `sips`.
    #[error("unsupported URI scheme {scheme:?}")]
    Scheme {
        /// The scheme as given.
        scheme: String,
    },
    /// A role name other than `hub`, `spoke` or `standalone`.
    #[error("unknown role {0:?} (expected hub, spoke or standalone)")]
    UnknownRole(String),
    /// A lookup policy other than `case-sensitive` or `case-insensitive`.
    #[error("unknown URI lookup policy {0:?} (expected case-sensitive or case-insensitive)")]
    UnknownPolicy(String),
}

// === Role ===

/// A cluster's place in the ILS network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Backbone cluster: meshes with every other hub and relays for its spokes.
    Hub,
    /// Leaf cluster: talks to exactly one hub.
    Spoke,
    /// Takes no part in ILS.
    Standalone,
}

impl Role {
    /// The configuration spelling: `hub`, `spoke` or `standalone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::Spoke => "spoke",
            Self::Standalone => "standalone",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s {
            "hub" => Ok(Self::Hub),
            "spoke" => Ok(Self::Spoke),
            "standalone" => Ok(Self::Standalone),
            other => Err(IdError::UnknownRole(other.to_owned())),
        }
    }
}

// === ClusterId ===

/// A cluster's unique ID in the ILS network: 1 to 50 characters of `A-Z a-z 0-9 . -`.
///
/// Compared as written (CUCM treats cluster IDs as case-sensitive strings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(Box<str>);

impl ClusterId {
    /// The longest cluster ID CUCM accepts.
    pub const MAX_LEN: usize = 50;
    /// CUCM's factory default, refused for ILS roles.
    pub const DEFAULT: &'static str = "StandAloneCluster";

    /// Parses a cluster ID for any role (the default ID is allowed: use [`Self::for_role`] for
    /// a cluster that joins ILS).
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_chars(s, Self::MAX_LEN, is_dns_char, "A-Z a-z 0-9 . -")?;
        Ok(Self(s.into()))
    }

    /// Parses the cluster ID of a cluster with `role`: hubs and spokes may not keep CUCM's
    /// default `StandAloneCluster`.
    pub fn for_role(s: &str, role: Role) -> Result<Self, IdError> {
        let id = Self::new(s)?;
        if role != Role::Standalone && s == Self::DEFAULT {
            return Err(IdError::DefaultClusterId { role });
        }
        Ok(id)
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === RouteString ===

/// The string a cluster advertises for its URIs and that SIP route patterns match: at most 64
/// characters of `A-Z a-z 0-9 . -`, with no all-digit segment between two dashes.
///
/// Held lower-cased: route strings are matched case-insensitively, like host names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteString(Box<str>);

impl RouteString {
    /// The longest route string CUCM accepts.
    pub const MAX_LEN: usize = 64;

    /// Parses and lower-cases a route string.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_chars(s, Self::MAX_LEN, is_dns_char, "A-Z a-z 0-9 . -")?;
        // CUCM: "abc-123-def.xyz.com" is invalid, "abc-1d-efg.xyz.com" is valid. Only a segment
        // with a dash on both sides counts.
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() > 2 {
            for seg in &parts[1..parts.len() - 1] {
                if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdError::AllDigitSegment {
                        segment: (*seg).to_owned(),
                    });
                }
            }
        }
        Ok(Self(s.to_ascii_lowercase().into()))
    }

    /// The route string as text (lower case).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === UriLookupPolicy ===

/// How the user part of a directory URI is compared (CUCM's enterprise parameter "URI Lookup
/// Policy"). Hosts are always case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UriLookupPolicy {
    /// `Alice@x` and `alice@x` are different URIs (CUCM's default).
    #[default]
    CaseSensitive,
    /// The user part is folded to lower case.
    CaseInsensitive,
}

impl UriLookupPolicy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaseSensitive => "case-sensitive",
            Self::CaseInsensitive => "case-insensitive",
        }
    }
}

impl FromStr for UriLookupPolicy {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s {
            "case-sensitive" => Ok(Self::CaseSensitive),
            "case-insensitive" => Ok(Self::CaseInsensitive),
            other => Err(IdError::UnknownPolicy(other.to_owned())),
        }
    }
}

// === DirectoryUri ===

/// A directory URI `user@host` in canonical form (RFC 3261 §19.1.4): escapes of characters
/// outside the reserved set are decoded, other escapes use upper-case hex, characters that may
/// not stand literally are escaped, the host is lower-cased, `+` is kept, and the user part is
/// folded to lower case only under [`UriLookupPolicy::CaseInsensitive`].
///
/// Two URIs that RFC 3261 calls equivalent have the same canonical form, so the canonical text
/// is the table key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirectoryUri {
    text: Box<str>,
    at: u16,
}

impl DirectoryUri {
    /// The longest user part CUCM accepts, in characters (an escape counts as one).
    pub const MAX_USER: usize = 47;
    /// The longest whole URI CUCM accepts, in characters after percent-encoding.
    pub const MAX_LEN: usize = 254;

    /// Parses `user@host`, `sip:user@host` or `sips:user@host`.
    pub fn parse(s: &str, policy: UriLookupPolicy) -> Result<Self, IdError> {
        let s = s.trim();
        let rest = match s.find(':') {
            Some(i) if !s[..i].contains('@') => {
                let scheme = &s[..i];
                if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
                    return Err(IdError::Scheme {
                        scheme: scheme.to_owned(),
                    });
                }
                &s[i + 1..]
            }
            _ => s,
        };
        let at = rest.rfind('@').ok_or(IdError::MissingAt)?;
        Self::from_parts(&rest[..at], &rest[at + 1..], policy)
    }

    /// Builds a URI from a raw (possibly escaped) user part and a host, as a SIP parser hands
    /// them over from a Request-URI.
    pub fn from_parts(user: &str, host: &str, policy: UriLookupPolicy) -> Result<Self, IdError> {
        let mut text = String::with_capacity(user.len() + host.len() + 1);
        let user_chars = canonical_user(user, policy, &mut text)?;
        if user_chars == 0 {
            return Err(IdError::EmptyUser);
        }
        if user_chars > Self::MAX_USER {
            return Err(IdError::TooLong {
                max: Self::MAX_USER,
                len: user_chars,
            });
        }
        let at = text.len();
        text.push('@');
        canonical_host(host, &mut text)?;
        if text.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                max: Self::MAX_LEN,
                len: text.len(),
            });
        }
        Ok(Self {
            text: text.into(),
            // `at` <= MAX_LEN (254) was checked above, so it fits.
            at: at as u16,
        })
    }

    /// The canonical `user@host` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical user part.
    pub fn user(&self) -> &str {
        &self.text[..usize::from(self.at)]
    }

    /// The lower-cased host part.
    pub fn host(&self) -> &str {
        &self.text[usize::from(self.at) + 1..]
    }

    /// Rebuilds a URI from text that [`Self::as_str`] produced (a table key).
    pub(crate) fn from_canonical(text: &str) -> Self {
        // A canonical user part escapes `@`, so the last `@` separates user and host.
        let at = text.rfind('@').unwrap_or(0);
        Self {
            text: text.into(),
            // Canonical text is at most MAX_LEN (254) bytes long.
            at: at as u16,
        }
    }

    /// Moves the canonical text out, for use as a compact table key.
    pub fn into_boxed_str(self) -> Box<str> {
        self.text
    }
}

/// Writes the canonical user part into `out` and returns its length in characters.
fn canonical_user(user: &str, policy: UriLookupPolicy, out: &mut String) -> Result<usize, IdError> {
    let bytes = user.as_bytes();
    let mut chars = 0;
    let mut i = 0;
    while i < bytes.len() {
        let mut b = bytes[i];
        let escaped = b == b'%';
        if escaped {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(IdError::BadEscape { at: i })?;
            b = hex;
            i += 3;
        } else {
            i += 1;
        }
        if policy == UriLookupPolicy::CaseInsensitive {
            b = b.to_ascii_lowercase();
        }
        // RFC 3261 §19.1.4: an escape of a reserved character differs from the literal one, so
        // it stays escaped; every other escape is decoded where the character may stand bare.
        let literal_ok = is_unreserved(b) || (!escaped && is_user_unreserved(b));
        if literal_ok {
            out.push(char::from(b));
        } else {
            push_escape(out, b);
        }
        chars += 1;
    }
    Ok(chars)
}

fn canonical_host(host: &str, out: &mut String) -> Result<(), IdError> {
    let bad = || IdError::BadHost {
        host: host.to_owned(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| bad())?;
        out.push('[');
        out.push_str(&ip.to_string());
        out.push(']');
        return Ok(());
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok {
        return Err(bad());
    }
    out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    Ok(())
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// RFC 3261 `unreserved = alphanum / mark`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// RFC 3261 `user-unreserved`: reserved characters allowed bare in a user part.
fn is_user_unreserved(b: u8) -> bool {
    b"&=+$,;?/".contains(&b)
}

// === DirectoryNumber ===

/// A directory number (a line's extension): 1 to 24 characters of `0-9 * # +`, `+` only first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirectoryNumber(Box<str>);

impl DirectoryNumber {
    /// The longest directory number CUCM accepts.
    pub const MAX_LEN: usize = 24;

    /// Parses a directory number.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_chars(
            s,
            Self::MAX_LEN,
            |c| c.is_ascii_digit() || c == '*' || c == '#' || c == '+',
            "0-9 * # +",
        )?;
        if let Some(at) = s
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '+')
            .map(|(i, _)| i)
        {
            return Err(IdError::BadChar {
                ch: '+',
                at,
                allowed: "+ only as the first character",
            });
        }
        Ok(Self(s.into()))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === Name ===

/// A configuration name (partition, calling search space, trunk): 1 to 50 characters of
/// `A-Z a-z 0-9`, space, `.`, `-` and `_`, as CUCM allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<str>);

impl Name {
    /// The longest name CUCM accepts.
    pub const MAX_LEN: usize = 50;

    /// Parses a name.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_chars(
            s,
            Self::MAX_LEN,
            |c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_'),
            "A-Z a-z 0-9 space . - _",
        )?;
        Ok(Self(s.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_dns_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

fn check_chars(
    s: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some((at, ch)) = s.chars().enumerate().find(|&(_, c)| !ok(c)) {
        return Err(IdError::BadChar { ch, at, allowed });
    }
    let len = s.chars().count();
    if len > max {
        return Err(IdError::TooLong { max, len });
    }
    Ok(())
}

macro_rules! text_impls {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}
text_impls!(ClusterId, RouteString, DirectoryUri, DirectoryNumber, Name);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CS: UriLookupPolicy = UriLookupPolicy::CaseSensitive;
    const CI: UriLookupPolicy = UriLookupPolicy::CaseInsensitive;

    #[test]
    fn route_string_follows_cucm_examples() {
        assert!(matches!(
            RouteString::new("abc-123-def.xyz.com"),
            Err(IdError::AllDigitSegment { .. })
        ));
        assert!(RouteString::new("abc-1d-efg.xyz.com").is_ok());
        assert!(
            RouteString::new("123-abc").is_ok(),
            "leading segment has one dash only"
        );
        assert!(
            RouteString::new("abc-123").is_ok(),
            "trailing segment has one dash only"
        );
        assert_eq!(RouteString::new("HQ.Route").unwrap().as_str(), "hq.route");
        assert!(RouteString::new(&"a".repeat(64)).is_ok());
        assert!(matches!(
            RouteString::new(&"a".repeat(65)),
            Err(IdError::TooLong { max: 64, len: 65 })
        ));
        assert!(matches!(
            RouteString::new("hq_route"),
            Err(IdError::BadChar { ch: '_', .. })
        ));
        assert_eq!(RouteString::new(""), Err(IdError::Empty));
    }

    #[test]
    fn cluster_id_refuses_default_for_ils_roles() {
        assert!(ClusterId::for_role("StandAloneCluster", Role::Standalone).is_ok());
        assert_eq!(
            ClusterId::for_role("StandAloneCluster", Role::Hub),
            Err(IdError::DefaultClusterId { role: Role::Hub })
        );
        assert!(ClusterId::for_role("StandAloneCluster", Role::Spoke).is_err());
        assert!(ClusterId::for_role("HQ", Role::Hub).is_ok());
        assert!(ClusterId::new(&"x".repeat(51)).is_err());
        assert!(ClusterId::new("hq cluster").is_err());
    }

    #[test]
    fn directory_uri_canonical_form() {
        let u = DirectoryUri::parse("sip:%41lice@HQ.Example.COM", CS).unwrap();
        assert_eq!(u.as_str(), "Alice@hq.example.com");
        assert_eq!(u.user(), "Alice");
        assert_eq!(u.host(), "hq.example.com");
        // Case-sensitive by default, folded under the case-insensitive policy.
        assert_ne!(u, DirectoryUri::parse("alice@hq.example.com", CS).unwrap());
        assert_eq!(
            DirectoryUri::parse("ALICE@hq.example.com", CI).unwrap(),
            DirectoryUri::parse("alice@HQ.example.com", CI).unwrap()
        );
        // `+` is kept; an escaped reserved character stays escaped (upper-case hex).
        assert_eq!(
            DirectoryUri::parse("+14085550100@x.com", CS)
                .unwrap()
                .user(),
            "+14085550100"
        );
        assert_eq!(
            DirectoryUri::parse("a%2bb@x.com", CS).unwrap().user(),
            "a%2Bb"
        );
        // Characters that cannot stand bare are escaped.
        assert_eq!(
            DirectoryUri::parse("a b@x.com", CS).unwrap().user(),
            "a%20b"
        );
        assert_eq!(
            DirectoryUri::parse("sip:bob@[2001:DB8::1]", CS)
                .unwrap()
                .host(),
            "[2001:db8::1]"
        );
    }

    #[test]
    fn directory_uri_limits() {
        let user47 = "u".repeat(47);
        assert!(DirectoryUri::parse(&format!("{user47}@x.com"), CS).is_ok());
        assert!(matches!(
            DirectoryUri::parse(&format!("{user47}u@x.com"), CS),
            Err(IdError::TooLong { max: 47, len: 48 })
        ));
        // An escape counts as one character of the user part but three of the whole URI.
        let host = format!("{}.com", vec!["h".repeat(60); 4].join("."));
        let long = format!("{}@{host}", "%20".repeat(10));
        assert!(matches!(
            DirectoryUri::parse(&long, CS),
            Err(IdError::TooLong { max: 254, .. })
        ));
        assert_eq!(DirectoryUri::parse("alice", CS), Err(IdError::MissingAt));
        assert_eq!(DirectoryUri::parse("@x.com", CS), Err(IdError::EmptyUser));
        assert!(matches!(
            DirectoryUri::parse("a@x..com", CS),
            Err(IdError::BadHost { .. })
        ));
        assert!(matches!(
            DirectoryUri::parse("a%4@x.com", CS),
            Err(IdError::BadEscape { .. })
        ));
        assert!(matches!(
            DirectoryUri::parse("tel:a@x.com", CS),
            Err(IdError::Scheme { .. })
        ));
    }

    #[test]
    fn directory_number_rules() {
        assert!(DirectoryNumber::new("1001").is_ok());
        assert!(DirectoryNumber::new("+14085550100").is_ok());
        assert!(DirectoryNumber::new("1+1").is_err());
        assert!(DirectoryNumber::new("10a1").is_err());
    }

    fn user_part() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                "[A-Za-z0-9._~!*'()+&=$,;?/-]".prop_map(|s| s),
                any::<u8>().prop_map(|b| format!("%{b:02x}")),
                any::<u8>().prop_map(|b| format!("%{b:02X}")),
            ],
            1..40,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn canonicalisation_is_idempotent(user in user_part(), host in "[a-z]{1,10}(\\.[A-Za-z]{1,10}){0,3}") {
            for policy in [CS, CI] {
                let u = DirectoryUri::from_parts(&user, &host, policy).unwrap();
                let again = DirectoryUri::parse(u.as_str(), policy).unwrap();
                prop_assert_eq!(&u, &again);
                prop_assert!(u.as_str().is_ascii());
                prop_assert_eq!(u.host(), host.to_ascii_lowercase());
            }
        }

        #[test]
        fn escaping_unreserved_does_not_change_identity(user in "[A-Za-z0-9._~-]{1,40}") {
            let escaped: String = user.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(
                DirectoryUri::from_parts(&user, "x.com", CS).unwrap(),
                DirectoryUri::from_parts(&escaped, "x.com", CS).unwrap()
            );
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = DirectoryUri::parse(&s, CS);
            let _ = RouteString::new(&s);
            let _ = ClusterId::new(&s);
        }
    }
}
