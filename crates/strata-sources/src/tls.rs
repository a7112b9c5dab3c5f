//! The TLS client configuration of an `mqtts://` broker: rustls on `ring`, verifying the broker
//! against `ca_file`'s certificates or, without one, the system's.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::seam::SourceFailure;

/// A client configuration trusting `ca_file` (PEM, one or more certificates) or the system's
/// roots. Read at each connection, so a renewed CA file is used without recreating the source.
pub(crate) fn client_config(ca_file: Option<&str>) -> Result<ClientConfig, SourceFailure> {
    let roots = match ca_file {
        Some(path) => file_roots(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceFailure::of("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn file_roots(path: &str) -> Result<RootCertStore, SourceFailure> {
    let what = format!("ca_file {path:?}");
    let pem = std::fs::read(path).map_err(|e| SourceFailure::of(&what, e))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        // Not the parser's error: it can quote a line of the file, and tenants name the file.
        let cert = cert.map_err(|_| SourceFailure(format!("{what} is not valid PEM")))?;
        roots.add(cert).map_err(|e| SourceFailure::of(&what, e))?;
    }
    if roots.is_empty() {
        return Err(SourceFailure(format!("{what} holds no PEM certificate")));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, SourceFailure> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(SourceFailure(format!(
            "no system CA certificate could be loaded ({} errors); give \"ca_file\"",
            found.errors.len()
        )));
    }
    Ok(roots)
}
