//! SIP trunks as plain data: destinations, transport, accepted sources, inbound CSS, dial
//! string interpretation and OPTIONS ping settings.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::ids::Name;
use crate::pattern::IpPattern;

/// Why a configuration value (a transport, a mode, a destination) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A word that is not one of the allowed spellings.
    #[error("unknown {what} {value:?} (expected {expected})")]
    Unknown {
        /// What was being parsed.
        what: &'static str,
        /// The text given.
        value: String,
        /// The allowed spellings.
        expected: &'static str,
    },
    /// A trunk destination that is neither `host:port` nor an SRV name.
    #[error("bad destination {value:?}: {reason}")]
    BadDestination {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

// === DialStringInterpretation ===

/// How a trunk classifies a Request-URI user part: as a number for digit analysis, or as a
/// directory URI (CUCM's "Dial String Interpretation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DialStringInterpretation {
    /// Every user part is a URI.
    AlwaysUri,
    /// A user part of only `0-9 * +` is a number (CUCM's default).
    #[default]
    DigitsStarPlus,
    /// A user part of only `0-9 A-D * +` is a number.
    DigitsAbcdStarPlus,
}

impl DialStringInterpretation {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysUri => "always-uri",
            Self::DigitsStarPlus => "digits-star-plus",
            Self::DigitsAbcdStarPlus => "digits-abcd-star-plus",
        }
    }

    /// Whether a (decoded) user part is a number under this interpretation.
    pub fn is_number(self, user: &[u8]) -> bool {
        let digit = |b: &u8| b.is_ascii_digit() || matches!(b, b'*' | b'+');
        match self {
            Self::AlwaysUri => false,
            Self::DigitsStarPlus => !user.is_empty() && user.iter().all(digit),
            Self::DigitsAbcdStarPlus => {
                !user.is_empty()
                    && user
                        .iter()
                        .all(|b| digit(b) || matches!(b, b'A'..=b'D' | b'a'..=b'd'))
            }
        }
    }
}

impl FromStr for DialStringInterpretation {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "always-uri" => Ok(Self::AlwaysUri),
            "digits-star-plus" => Ok(Self::DigitsStarPlus),
            "digits-abcd-star-plus" => Ok(Self::DigitsAbcdStarPlus),
            other => Err(ValueError::Unknown {
                what: "dial string interpretation",
                value: other.to_owned(),
                expected: "always-uri, digits-star-plus or digits-abcd-star-plus",
            }),
        }
    }
}

// === Transport ===

/// The transport a trunk uses towards its destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// SIP over UDP.
    #[default]
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS.
    Tls,
}

impl Transport {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// The transport's default port (RFC 3261 §19.1.2: 5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
        }
    }
}

impl FromStr for Transport {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            other => Err(ValueError::Unknown {
                what: "transport",
                value: other.to_owned(),
                expected: "udp, tcp or tls",
            }),
        }
    }
}

// === Destination ===

/// Where a trunk sends requests: an address or name with a port, or a DNS SRV name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An IP address or host name (lower case; IPv6 without brackets) and a port.
    HostPort {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// A DNS SRV name such as `_sip._udp.example.com` (lower case), resolved by the proxy.
    Srv {
        /// The SRV owner name.
        name: String,
    },
}

impl Destination {
    /// Parses `127.0.1.10:5060`, `[::1]:5060`, `host.example.com:5060` or
    /// `_sip._udp.example.com`. A host name or address needs its port; an SRV name (one that
    /// starts with `_`) takes none.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let bad = |reason| ValueError::BadDestination {
            value: text.to_owned(),
            reason,
        };
        let text = text.trim();
        if text.starts_with('_') {
            let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
            if !is_dns_name(&name, true) {
                return Err(bad("not a DNS SRV name"));
            }
            return Ok(Self::Srv { name });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (addr, port) = rest.split_once(']').ok_or_else(|| bad("missing `]`"))?;
            let addr: std::net::Ipv6Addr = addr.parse().map_err(|_| bad("bad IPv6 address"))?;
            let port = port.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
            (addr.to_string(), port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
            let host = host.to_ascii_lowercase();
            if host.parse::<IpAddr>().is_err() && !is_dns_name(&host, false) {
                return Err(bad("not an IP address or host name"));
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("port is not a number from 1 to 65535"))?;
        Ok(Self::HostPort { host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostPort { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::HostPort { host, port } => write!(f, "{host}:{port}"),
            Self::Srv { name } => f.write_str(name),
        }
    }
}

impl FromStr for Destination {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Self::parse(s)
    }
}

// === OptionsPing, TrunkSpec ===

/// OPTIONS ping settings of a trunk: plain data the proxy acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptionsPing {
    /// Whether the proxy pings the trunk's destinations.
    pub enabled: bool,
    /// Time between pings to one destination.
    pub interval: Duration,
    /// Unanswered pings in a row after which a destination is marked down.
    pub down_after: u32,
}

impl Default for OptionsPing {
    /// Off, every 60 s, down after 3 misses (CUCM's in-service interval is 60 s).
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(60),
            down_after: 3,
        }
    }
}

/// A SIP trunk: a named peer the edge sends calls to and accepts calls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    /// Unique name.
    pub name: Name,
    /// Up to [`TrunkSpec::MAX_DESTINATIONS`] destinations, tried in order.
    pub destinations: Vec<Destination>,
    /// Transport towards the destinations.
    pub transport: Transport,
    /// Source addresses calls are accepted from.
    pub accepts: Vec<IpPattern>,
    /// The calling search space of calls arriving over this trunk.
    pub inbound_css: Name,
    /// How calls arriving over this trunk are classified.
    pub dial_string: DialStringInterpretation,
    /// Add `X-cisco-dest-route-string` to learned-URI calls sent over this trunk.
    pub add_dest_route_string: bool,
    /// Honour `X-cisco-dest-route-string` on calls arriving over this trunk.
    pub route_on_dest_route_string: bool,
    /// OPTIONS ping settings.
    pub options_ping: OptionsPing,
}

impl TrunkSpec {
    /// The most destinations a trunk may have (CUCM's limit).
    pub const MAX_DESTINATIONS: usize = 16;
}

macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(DialStringInterpretation, Transport);

fn is_dns_name(name: &str, srv: bool) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let body = if srv {
                label.strip_prefix('_').unwrap_or(label)
            } else {
                label
            };
            !body.is_empty()
                && label.len() <= 63
                && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !body.starts_with('-')
                && !body.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            Destination::parse("127.0.1.10:5060").unwrap(),
            Destination::HostPort {
                host: "127.0.1.10".into(),
                port: 5060
            }
        );
        assert_eq!(
            Destination::parse("[::1]:5061").unwrap().to_string(),
            "[::1]:5061"
        );
        assert_eq!(
            Destination::parse("PBX.Example.com:5060")
                .unwrap()
                .to_string(),
            "pbx.example.com:5060"
        );
        assert_eq!(
            Destination::parse("_sip._udp.example.com").unwrap(),
            Destination::Srv {
                name: "_sip._udp.example.com".into()
            }
        );
        for bad in [
            "pbx.example.com",
            "1.2.3.4:0",
            "1.2.3.4:x",
            "[::1]5060",
            "a b:5060",
            "_sip._udp..x",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn modes_parse_and_classify() {
        for mode in ["always-uri", "digits-star-plus", "digits-abcd-star-plus"] {
            assert_eq!(
                mode.parse::<DialStringInterpretation>().unwrap().as_str(),
                mode
            );
        }
        assert!("digits".parse::<DialStringInterpretation>().is_err());
        assert_eq!("tls".parse::<Transport>(), Ok(Transport::Tls));
        assert!("sctp".parse::<Transport>().is_err());
        let dsp = DialStringInterpretation::DigitsStarPlus;
        assert!(dsp.is_number(b"+14085550100"));
        assert!(dsp.is_number(b"*85"));
        assert!(!dsp.is_number(b"1A"));
        assert!(!dsp.is_number(b""));
        assert!(DialStringInterpretation::DigitsAbcdStarPlus.is_number(b"1A"));
        assert!(!DialStringInterpretation::DigitsAbcdStarPlus.is_number(b"1E"));
        assert!(!DialStringInterpretation::AlwaysUri.is_number(b"1001"));
    }
}
