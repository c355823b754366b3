//! This edge's TLS identity: its certificate chain and private key.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::AuthError;
use super::cert::CertFacts;
use super::trust::{Fingerprint, read_certificates};

/// How long a self-signed identity is valid: ten years, like a long-lived CUCM self-signed
/// certificate. Pinned peers must re-pin a replaced certificate.
const SELF_SIGNED_DAYS: i64 = 3650;

/// This edge's TLS identity: a certificate chain (end-entity first) and its private key.
///
/// Either created on first start as a self-signed certificate for the cluster name (like CUCM's
/// self-signed certificate, so a lab needs no manual set-up), or loaded from operator-provided
/// PEM files (a CA-signed certificate).
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("names", &self.names())
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// The certificate file that [`Self::load_or_create`] keeps in its directory.
    pub const CERT_FILE: &'static str = "ils-identity.pem";
    /// The private key file that [`Self::load_or_create`] keeps in its directory (mode 0600).
    pub const KEY_FILE: &'static str = "ils-identity-key.pem";

    /// Loads the identity kept in `dir`, or creates a self-signed one for `cluster_name` on
    /// first start and stores it there.
    ///
    /// The created certificate is ECDSA P-256, names `cluster_name` as its SAN dNSName and CN,
    /// and carries both `serverAuth` and `clientAuth` extended key usage. The key file is written
    /// with permissions 0600. A stored certificate that does not name `cluster_name` is refused
    /// with [`AuthError::IdentityName`] rather than replaced, since peers may have pinned it.
    pub fn load_or_create(dir: &Path, cluster_name: &str) -> Result<Self, AuthError> {
        let cert_path = dir.join(Self::CERT_FILE);
        let key_path = dir.join(Self::KEY_FILE);
        if cert_path.exists() {
            let identity = Self::from_pem_files(&cert_path, &key_path)?;
            let facts = CertFacts::parse(identity.certificate())?;
            if !facts.names(cluster_name) {
                return Err(AuthError::IdentityName {
                    path: cert_path,
                    expected: cluster_name.to_owned(),
                    presented: facts.presented(),
                });
            }
            return Ok(identity);
        }
        // No certificate: a key left alone by an interrupted first start is replaced.
        let identity = Self::self_signed(cluster_name)?;
        fs::create_dir_all(dir).map_err(|e| AuthError::io(dir, e))?;
        let key_pem = pem_block("PRIVATE KEY", identity.key.secret_der());
        write_atomic(&key_path, key_pem.as_bytes(), true)?;
        let cert_pem = pem_block("CERTIFICATE", identity.certificate());
        write_atomic(&cert_path, cert_pem.as_bytes(), false)?;
        tracing::info!(
            cert = %cert_path.display(),
            fingerprint = %identity.fingerprint(),
            "created a self-signed ILS identity for {cluster_name}"
        );
        Ok(identity)
    }

    /// Creates a self-signed identity for `cluster_name` in memory (see [`Self::load_or_create`]).
    pub fn self_signed(cluster_name: &str) -> Result<Self, AuthError> {
        let generation = |e: rcgen::Error| AuthError::KeyGeneration(e.to_string());
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generation)?;
        let mut params =
            rcgen::CertificateParams::new(vec![cluster_name.to_owned()]).map_err(generation)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cluster_name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        // An hour of slack for peers whose clocks run behind.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
        let cert = params.self_signed(&key).map_err(generation)?;
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| {
            AuthError::KeyGeneration(format!("serialising the new private key: {e}"))
        })?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key,
        })
    }

    /// Loads an operator-provided identity: a PEM certificate chain (end-entity first) and a PEM
    /// private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, AuthError> {
        let chain = read_certificates(cert)?;
        let key_bytes = fs::read(key).map_err(|e| AuthError::io(key, e))?;
        warn_if_readable_by_others(key);
        let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| AuthError::BadPem {
            path: key.to_owned(),
            reason: format!("no usable private key: {e}"),
        })?;
        Self::from_der(chain, key_der).map_err(|e| match e {
            AuthError::BadCertificate { reason } => AuthError::BadPem {
                path: cert.to_owned(),
                reason,
            },
            AuthError::BadPrivateKey { reason } => AuthError::BadPem {
                path: key.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// An identity from DER values (certificate chain end-entity first, and its key).
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, AuthError> {
        let Some(end_entity) = chain.first() else {
            return Err(AuthError::BadCertificate {
                reason: "the certificate chain is empty".to_owned(),
            });
        };
        CertFacts::parse(end_entity)?;
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &super::provider())
            .map_err(|e| AuthError::BadPrivateKey {
                reason: e.to_string(),
            })?;
        Ok(Self { chain, key })
    }

    /// The end-entity certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        // `from_der` refuses an empty chain.
        &self.chain[0]
    }

    /// The certificate chain, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A copy of the private key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The SHA-256 fingerprint of the end-entity certificate (what a peer pins).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.certificate())
    }

    /// The names the certificate presents.
    pub fn names(&self) -> Vec<String> {
        CertFacts::parse(self.certificate())
            .map(|f| f.presented())
            .unwrap_or_default()
    }

    /// The end-entity certificate as PEM, for an operator to copy to a peer's trust directory.
    pub fn certificate_pem(&self) -> String {
        pem_block("CERTIFICATE", self.certificate())
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes `path` through a temporary file and a rename, so a crash leaves the old file or the
/// new one, never half of it.
fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), AuthError> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(|e| AuthError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuthError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| AuthError::io(path, e))?;
    Ok(())
}

fn warn_if_readable_by_others(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(key) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    key = %key.display(),
                    "private key file is readable by group or others (mode {:o}); chmod 600 it",
                    mode & 0o777
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key;
}
