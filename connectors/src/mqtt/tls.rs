//! rustls client configuration from PEM files, with the `ring` provider chosen explicitly (no
//! process-wide default provider, no C toolchain for aws-lc).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::TlsSettings;

/// Why a TLS configuration could not be built. Each message names the file and the cause (the
/// cause is part of the message, not a separate `source`, so it is printed once).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a PEM certificate file: {error}", path.display())]
    NotCertificates {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM key file: {error}", path.display())]
    NotKey {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: holds no private key", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable CA certificate: {error}", path.display())]
    UnusableCa { path: PathBuf, error: rustls::Error },
    #[error("{error}")]
    Protocols { error: rustls::Error },
    #[error("client certificate and key do not fit together: {error}")]
    KeyMismatch { error: rustls::Error },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::NotCertificates {
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut BufReader::new(&pem[..]))
        .map_err(|error| TlsError::NotKey {
            path: path.to_owned(),
            error,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

pub fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(&tls.ca_file)? {
        roots.add(c).map_err(|error| TlsError::UnusableCa {
            path: tls.ca_file.clone(),
            error,
        })?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Protocols { error })?
            .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(|error| TlsError::KeyMismatch { error })?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let settings = |ca: &Path| TlsSettings {
            ca_file: ca.to_owned(),
            cert_file: None,
            key_file: None,
        };
        let e = client_config(&settings(&missing)).err().unwrap();
        assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert!(e.to_string().contains("missing-ca.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(&settings(&empty)).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("{}: holds no certificate", empty.display())
        );
    }
}
