//! IP SIP route patterns and trunk source addresses: hosts and CIDR blocks, v4 and v6.

use std::fmt;
use std::net::IpAddr;

use super::{PatternError, Rank, Specificity};

/// An IP address or CIDR block: `10.1.2.3`, `10.0.0.0/8`, `2001:db8::1`, `2001:db8::/32`.
///
/// An IPv4 pattern also contains the IPv4-mapped IPv6 form of its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPattern {
    net: IpAddr,
    prefix: u8,
}

impl IpPattern {
    /// Parses an address (optionally in brackets) or a CIDR block. Bits beyond the prefix must
    /// be zero, so a typo such as `10.0.0.1/8` is refused rather than silently widened.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let net: IpAddr = bare.parse().map_err(|_| PatternError::BadAddress {
            value: addr.to_owned(),
        })?;
        let max = max_prefix(net);
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(PatternError::BadPrefix {
                        prefix: p.to_owned(),
                        max,
                    });
                }
            },
        };
        if mask(net, prefix) != net {
            return Err(PatternError::HostBits {
                value: text.to_owned(),
                prefix,
            });
        }
        Ok(Self { net, prefix })
    }

    /// A pattern that holds exactly `addr`.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            net: addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.net
    }

    /// The prefix length (32 or 128 for a single host).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies in this block.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.net.is_ipv4() == addr.is_ipv4() && mask(addr, self.prefix) == self.net
    }

    /// How specific the pattern is: the longest prefix wins.
    pub fn specificity(&self) -> Specificity {
        Specificity(Rank::Ip {
            prefix: self.prefix,
        })
    }
}

impl fmt::Display for IpPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.net) {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn contains_hosts_and_blocks() {
        let p = IpPattern::parse("10.0.0.0/8").unwrap();
        assert!(p.contains(ip("10.200.1.1")));
        assert!(!p.contains(ip("11.0.0.1")));
        assert!(p.contains(ip("::ffff:10.1.2.3")));
        assert!(!p.contains(ip("2001:db8::1")));
        let h = IpPattern::parse("127.0.1.10").unwrap();
        assert!(h.contains(ip("127.0.1.10")));
        assert!(!h.contains(ip("127.0.1.11")));
        let v6 = IpPattern::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert!(
            IpPattern::parse("[2001:db8::1]")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(
            IpPattern::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("1.2.3.4"))
        );
        assert_eq!(
            IpPattern::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            IpPattern::parse("10.1.2.3").unwrap().to_string(),
            "10.1.2.3"
        );
    }

    #[test]
    fn longest_prefix_is_most_specific() {
        let s = |t: &str| IpPattern::parse(t).unwrap().specificity();
        assert!(s("10.1.2.3") > s("10.1.2.0/24"));
        assert!(s("10.1.2.0/24") > s("10.0.0.0/8"));
        assert!(s("10.0.0.0/8") > s("0.0.0.0/0"));
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(matches!(
            IpPattern::parse("10.0.0.1/8"),
            Err(PatternError::HostBits { prefix: 8, .. })
        ));
        assert!(matches!(
            IpPattern::parse("10.0.0.0/33"),
            Err(PatternError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            IpPattern::parse("10.0.0.0/x"),
            Err(PatternError::BadPrefix { .. })
        ));
        assert!(matches!(
            IpPattern::parse("10.0.0"),
            Err(PatternError::BadAddress { .. })
        ));
    }
}
