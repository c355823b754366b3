//! Header field names: the ones the proxy reads, recognised in long and compact form.

/// A recognised header field name. Matching is case-insensitive and accepts the compact forms
/// of RFC 3261 §7.3.3 and later RFCs (`v`, `i`, `m`, `f`, `t`, `l`, `k`, `c`, `s`, `e`, `o`,
/// `u`, `r`, `b`, `x`, `a`, `j`, `d`, `y`, `n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Via` / `v`
    Via,
    /// `Max-Forwards`
    MaxForwards,
    /// `CSeq`
    CSeq,
    /// `Call-ID` / `i`
    CallId,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `Contact` / `m`
    Contact,
    /// `Proxy-Require`
    ProxyRequire,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Require`
    Require,
    /// `Supported` / `k`
    Supported,
    /// `Unsupported`
    Unsupported,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Content-Encoding` / `e`
    ContentEncoding,
    /// `Subject` / `s`
    Subject,
    /// `Event` / `o`
    Event,
    /// `Allow-Events` / `u`
    AllowEvents,
    /// `Refer-To` / `r` (RFC 3515)
    ReferTo,
    /// `Referred-By` / `b` (RFC 3892)
    ReferredBy,
    /// `Session-Expires` / `x` (RFC 4028)
    SessionExpires,
    /// `Accept-Contact` / `a` (RFC 3841)
    AcceptContact,
    /// `Reject-Contact` / `j` (RFC 3841)
    RejectContact,
    /// `Request-Disposition` / `d` (RFC 3841)
    RequestDisposition,
    /// `Identity` / `y` (RFC 8224)
    Identity,
    /// `Identity-Info` / `n` (RFC 4474)
    IdentityInfo,
    /// Any other header field; look it up by its raw name.
    Other,
}

impl HeaderName {
    /// Classifies a raw header name.
    pub fn from_bytes(name: &[u8]) -> Self {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => Self::Via,
                b'i' => Self::CallId,
                b'f' => Self::From,
                b't' => Self::To,
                b'm' => Self::Contact,
                b'l' => Self::ContentLength,
                b'k' => Self::Supported,
                b'c' => Self::ContentType,
                b's' => Self::Subject,
                b'e' => Self::ContentEncoding,
                b'o' => Self::Event,
                b'u' => Self::AllowEvents,
                b'r' => Self::ReferTo,
                b'b' => Self::ReferredBy,
                b'x' => Self::SessionExpires,
                b'a' => Self::AcceptContact,
                b'j' => Self::RejectContact,
                b'd' => Self::RequestDisposition,
                b'y' => Self::Identity,
                b'n' => Self::IdentityInfo,
                _ => Self::Other,
            };
        }
        // Dispatch on length and first letter so that at most one comparison runs per header.
        let first = name.first().map_or(0, u8::to_ascii_lowercase);
        let candidate = match (name.len(), first) {
            (2, b't') => Self::To,
            (3, b'v') => Self::Via,
            (4, b'c') => Self::CSeq,
            (4, b'f') => Self::From,
            (5, b'r') => Self::Route,
            (5, b'e') => Self::Event,
            (7, b'c') if name[1].eq_ignore_ascii_case(&b'a') => Self::CallId,
            (7, b'c') => Self::Contact,
            (7, b'r') => Self::Require,
            (7, b's') => Self::Subject,
            (8, b'r') => Self::ReferTo,
            (8, b'i') => Self::Identity,
            (9, b's') => Self::Supported,
            (11, b'r') => Self::ReferredBy,
            (11, b'u') => Self::Unsupported,
            (12, b'm') => Self::MaxForwards,
            (12, b'r') => Self::RecordRoute,
            (12, b'c') => Self::ContentType,
            (12, b'a') => Self::AllowEvents,
            (13, b'p') => Self::ProxyRequire,
            (13, b'i') => Self::IdentityInfo,
            (14, b'c') => Self::ContentLength,
            (14, b'a') => Self::AcceptContact,
            (14, b'r') => Self::RejectContact,
            (15, b's') => Self::SessionExpires,
            (16, b'c') => Self::ContentEncoding,
            (19, b'p') => Self::ProxyAuthorization,
            (19, b'r') => Self::RequestDisposition,
            _ => return Self::Other,
        };
        if name.eq_ignore_ascii_case(candidate.as_str().as_bytes()) {
            candidate
        } else {
            Self::Other
        }
    }

    /// The canonical long name; `""` for [`HeaderName::Other`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Via => "Via",
            Self::MaxForwards => "Max-Forwards",
            Self::CSeq => "CSeq",
            Self::CallId => "Call-ID",
            Self::From => "From",
            Self::To => "To",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::Contact => "Contact",
            Self::ProxyRequire => "Proxy-Require",
            Self::ProxyAuthorization => "Proxy-Authorization",
            Self::Require => "Require",
            Self::Supported => "Supported",
            Self::Unsupported => "Unsupported",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::ContentEncoding => "Content-Encoding",
            Self::Subject => "Subject",
            Self::Event => "Event",
            Self::AllowEvents => "Allow-Events",
            Self::ReferTo => "Refer-To",
            Self::ReferredBy => "Referred-By",
            Self::SessionExpires => "Session-Expires",
            Self::AcceptContact => "Accept-Contact",
            Self::RejectContact => "Reject-Contact",
            Self::RequestDisposition => "Request-Disposition",
            Self::Identity => "Identity",
            Self::IdentityInfo => "Identity-Info",
            Self::Other => "",
        }
    }

    /// True when this is a list header whose values may be comma-separated on one line.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            Self::Via
                | Self::Route
                | Self::RecordRoute
                | Self::Contact
                | Self::ProxyRequire
                | Self::Require
                | Self::Supported
                | Self::Unsupported
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_compact_and_case_insensitive() {
        assert_eq!(HeaderName::from_bytes(b"vIa"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"r"), HeaderName::ReferTo);
        assert_eq!(HeaderName::from_bytes(b"Refer-To"), HeaderName::ReferTo);
        assert_eq!(
            HeaderName::from_bytes(b"X-cisco-dest-route-string"),
            HeaderName::Other
        );
        assert_eq!(
            HeaderName::from_bytes(b"Proxy-Authorization"),
            HeaderName::ProxyAuthorization
        );
        for name in [
            HeaderName::Via,
            HeaderName::ContentLength,
            HeaderName::RecordRoute,
            HeaderName::SessionExpires,
            HeaderName::RequestDisposition,
            HeaderName::ContentEncoding,
            HeaderName::ReferredBy,
            HeaderName::IdentityInfo,
        ] {
            assert_eq!(HeaderName::from_bytes(name.as_str().as_bytes()), name);
        }
    }
}
