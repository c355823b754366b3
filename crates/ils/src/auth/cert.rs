//! What ILS reads from a peer certificate: its names, its extended key usages and its validity.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{AuthError, Eku};

/// The facts of a certificate that the ILS policy looks at.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    /// SAN dNSNames (lower-cased), or the CN when the certificate has no SAN extension.
    pub(crate) dns_names: Vec<String>,
    /// SAN iPAddresses.
    pub(crate) ip_addrs: Vec<IpAddr>,
    pub(crate) server_auth: bool,
    pub(crate) client_auth: bool,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl CertFacts {
    /// Parses a DER certificate.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, AuthError> {
        let bad = |reason: String| AuthError::BadCertificate { reason };
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the certificate", rest.len())));
        }
        let mut dns_names = Vec::new();
        let mut ip_addrs = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("subjectAltName: {e}")))?;
        match san {
            Some(san) => {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::DNSName(n) => dns_names.push(n.to_ascii_lowercase()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                                ip_addrs.push(IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                                ip_addrs.push(IpAddr::from(v6));
                            }
                        }
                        _ => {}
                    }
                }
            }
            None => {
                // RFC 6125 falls back to the CN only when there is no SAN at all.
                if let Some(cn) = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                {
                    dns_names.push(cn.to_ascii_lowercase());
                }
            }
        }
        let (server_auth, client_auth) = match cert
            .extended_key_usage()
            .map_err(|e| bad(format!("extendedKeyUsage: {e}")))?
        {
            Some(eku) => (
                eku.value.server_auth || eku.value.any,
                eku.value.client_auth || eku.value.any,
            ),
            None => (false, false),
        };
        let validity = cert.validity();
        Ok(Self {
            dns_names,
            ip_addrs,
            server_auth,
            client_auth,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The certificate's names, for messages.
    pub(crate) fn presented(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .cloned()
            .chain(self.ip_addrs.iter().map(IpAddr::to_string))
            .collect()
    }

    /// The certificate's names joined, for messages.
    pub(crate) fn subject(&self) -> String {
        let names = self.presented();
        if names.is_empty() {
            "a certificate without names".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Refuses a certificate outside its validity period at `now` (seconds since the epoch).
    pub(crate) fn check_validity(&self, now: i64) -> Result<(), AuthError> {
        if now > self.not_after {
            return Err(AuthError::ExpiredCertificate {
                subject: self.subject(),
                not_after: self.not_after,
            });
        }
        if now < self.not_before {
            return Err(AuthError::CertificateNotYetValid {
                subject: self.subject(),
                not_before: self.not_before,
            });
        }
        Ok(())
    }

    /// Refuses a certificate without both `serverAuth` and `clientAuth`.
    pub(crate) fn check_eku(&self) -> Result<(), AuthError> {
        match Eku::missing(self.server_auth, self.client_auth) {
            None => Ok(()),
            Some(missing) => Err(AuthError::MissingEku {
                subject: self.subject(),
                missing,
            }),
        }
    }

    /// Whether the certificate names `expected` (a DNS name, compared case-insensitively with an
    /// optional trailing dot and a `*.` wildcard in the leftmost label, or an IP address).
    pub(crate) fn names(&self, expected: &str) -> bool {
        let expected = expected.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = expected.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.ip_addrs.contains(&ip);
        }
        self.dns_names
            .iter()
            .any(|name| dns_name_matches(name.trim_end_matches('.'), &expected))
    }

    /// Refuses a certificate that does not name `expected`.
    pub(crate) fn check_name(&self, expected: &str) -> Result<(), AuthError> {
        if self.names(expected) {
            Ok(())
        } else {
            Err(AuthError::NameMismatch {
                expected: expected.to_owned(),
                presented: self.presented(),
            })
        }
    }
}

/// RFC 6125 §6.4: exact match, or `*.rest` matching exactly one label followed by `rest`.
fn dns_name_matches(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(rest), Some((label, name_rest))) => {
            !label.is_empty() && rest.contains('.') && rest == name_rest
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::dns_name_matches;

    #[test]
    fn wildcards_cover_one_label_only() {
        assert!(dns_name_matches("hq.example.com", "hq.example.com"));
        assert!(dns_name_matches("*.example.com", "hq.example.com"));
        assert!(!dns_name_matches("*.example.com", "a.hq.example.com"));
        assert!(!dns_name_matches("*.com", "example.com"));
        assert!(!dns_name_matches("hq.example.com", "br.example.com"));
    }
}
