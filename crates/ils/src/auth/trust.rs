//! The trust store: pinned peer certificates (the seed's cross-import) and trusted CAs.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::cert::CertFacts;
use super::{AuthError, provider};

/// The SHA-256 fingerprint of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    /// Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a certificate was trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustBasis {
    /// The exact certificate is pinned in the trust store.
    Pinned,
    /// The certificate chains to a trusted CA.
    CaSigned,
}

/// Pinned peer certificates and trusted CA certificates.
///
/// CAs are fixed when the store is built (`&mut self`); pins can be added at run time through a
/// shared reference, which is how the password-then-TLS bootstrap records a peer's certificate
/// so that the TLS verifiers accept it from then on.
pub struct TrustStore {
    pinned: RwLock<HashSet<Fingerprint>>,
    roots: Arc<RootCertStore>,
    client_chain: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("pinned", &self.pinned_count())
            .field("cas", &self.roots.len())
            .finish()
    }
}

impl Default for TrustStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustStore {
    /// An empty store: trusts nobody until certificates are pinned or CAs added.
    pub fn new() -> Self {
        Self {
            pinned: RwLock::new(HashSet::new()),
            roots: Arc::new(RootCertStore::empty()),
            client_chain: None,
            provider: provider(),
        }
    }

    /// Pins a peer certificate: that exact certificate is trusted from now on.
    pub fn pin(&self, cert: &CertificateDer<'_>) -> Fingerprint {
        let fp = Fingerprint::of(cert);
        self.pinned
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(fp);
        fp
    }

    /// Removes a pin; returns whether it was there.
    pub fn unpin(&self, fingerprint: &Fingerprint) -> bool {
        self.pinned
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(fingerprint)
    }

    /// Whether this exact certificate is pinned.
    pub fn is_pinned(&self, cert: &[u8]) -> bool {
        self.pinned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&Fingerprint::of(cert))
    }

    /// How many certificates are pinned.
    pub fn pinned_count(&self) -> usize {
        self.pinned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Pins every certificate of every file in `dir` (the seed's cross-import directory); each
    /// file holds PEM certificates or one DER certificate (`.der`, `.cer`). Returns how many
    /// were pinned. A missing directory pins nothing.
    pub fn pin_dir(&self, dir: &Path) -> Result<usize, AuthError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(AuthError::io(dir, e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| AuthError::io(dir, e))?;
            let path = entry.path();
            if path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut count = 0;
        for path in paths {
            for cert in read_certificates(&path)? {
                self.pin(&cert);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Pins every certificate in one PEM (or DER) file. Returns how many.
    pub fn pin_file(&self, path: &Path) -> Result<usize, AuthError> {
        let certs = read_certificates(path)?;
        for cert in &certs {
            self.pin(cert);
        }
        Ok(certs.len())
    }

    /// Trusts a CA certificate: peers whose chain ends at it are trusted.
    pub fn add_ca(&mut self, ca: CertificateDer<'_>) -> Result<(), AuthError> {
        let mut roots = (*self.roots).clone();
        roots.add(ca).map_err(|e| AuthError::BadCertificate {
            reason: format!("CA certificate: {e}"),
        })?;
        self.set_roots(roots)
    }

    /// Trusts every CA certificate in a PEM (or DER) file. Returns how many.
    pub fn add_ca_file(&mut self, path: &Path) -> Result<usize, AuthError> {
        let certs = read_certificates(path)?;
        let mut roots = (*self.roots).clone();
        for cert in &certs {
            roots.add(cert.clone()).map_err(|e| AuthError::BadPem {
                path: path.to_owned(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        self.set_roots(roots)?;
        Ok(certs.len())
    }

    fn set_roots(&mut self, roots: RootCertStore) -> Result<(), AuthError> {
        let roots = Arc::new(roots);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| AuthError::BadCertificate {
                    reason: format!("CA certificates: {e}"),
                })?;
        self.roots = roots;
        self.client_chain = Some(verifier);
        Ok(())
    }

    /// How many CAs are trusted.
    pub fn ca_count(&self) -> usize {
        self.roots.len()
    }

    /// Checks trust, extended key usage and validity of a peer's chain (end-entity first), but
    /// not its name: pinned, or chaining to a trusted CA; both `serverAuth` and `clientAuth`;
    /// valid at `now`.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<TrustBasis, AuthError> {
        self.verify_facts(chain, now).map(|(basis, _)| basis)
    }

    /// [`Self::verify`], also returning the parsed certificate for the name check.
    pub(crate) fn verify_facts(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(TrustBasis, CertFacts), AuthError> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(AuthError::NoCertificate {
                mode: super::AuthMode::Tls,
            });
        };
        let facts = CertFacts::parse(end_entity)?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if self.is_pinned(end_entity) {
            facts.check_validity(now_secs)?;
            facts.check_eku()?;
            return Ok((TrustBasis::Pinned, facts));
        }
        let Some(client_chain) = &self.client_chain else {
            return Err(AuthError::UntrustedCertificate {
                subject: facts.subject(),
                reason: format!(
                    "not pinned in the trust store (SHA-256 {}), and no trusted CA is configured",
                    Fingerprint::of(end_entity)
                ),
            });
        };
        // Chain and validity for each usage; rustls' webpki verifiers do the path building.
        let client = client_chain
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ());
        let server = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &rustls::server::ParsedCertificate::try_from(end_entity)
                .map_err(|e| chain_error(&facts, end_entity, &e, now_secs))?,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        );
        client
            .and(server)
            .map_err(|e| chain_error(&facts, end_entity, &e, now_secs))?;
        facts.check_eku()?;
        Ok((TrustBasis::CaSigned, facts))
    }
}

/// Maps a webpki refusal to the specific ILS refusal.
fn chain_error(facts: &CertFacts, der: &[u8], err: &rustls::Error, now: i64) -> AuthError {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => match facts.check_validity(now) {
            Err(e) => e,
            Ok(()) => AuthError::UntrustedCertificate {
                subject: facts.subject(),
                reason: "a CA certificate in its chain is outside its validity period".to_owned(),
            },
        },
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            match facts.check_eku() {
                Err(e) => e,
                Ok(()) => AuthError::UntrustedCertificate {
                    subject: facts.subject(),
                    reason: "a CA certificate in its chain does not allow this usage".to_owned(),
                },
            }
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => AuthError::UntrustedCertificate {
            subject: facts.subject(),
            reason: format!(
                "not pinned in the trust store (SHA-256 {}), and not signed by a trusted CA",
                Fingerprint::of(der)
            ),
        },
        other => AuthError::UntrustedCertificate {
            subject: facts.subject(),
            reason: other.to_string(),
        },
    }
}

/// Reads the certificates of a PEM file, or of a DER file when it holds no PEM.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    let bytes = std::fs::read(path).map_err(|e| AuthError::io(path, e))?;
    let bad = |reason: String| AuthError::BadPem {
        path: path.to_owned(),
        reason,
    };
    if !bytes.starts_with(b"-----") && !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        // A binary DER export, as Windows' certificate export wizard writes it.
        CertFacts::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}
