//! The one TLS and HTTP client stack of every rt-relay binary: reqwest over rustls on `ring`
//! (smaller than aws-lc-rs and faster to its first handshakes: docs/PERFORMANCE.md), with
//! Mozilla's root certificates compiled in (`webpki-roots`). The RT client and the AWS SDK
//! (through [`crate::aws`]) both build their clients from [`client_builder`], so one rustls
//! configuration is made once per process and shared.
//!
//! Why compiled-in roots: the OS store on Linux is a directory of PEM files (and a bundle
//! holding them again); parsing it at every cold start took about half of a function's
//! start-up CPU (docs/PERFORMANCE.md). The AWS endpoints chain to Amazon Trust Services
//! roots, which are in Mozilla's list, as are the public CAs an RT server would use.
//!
//! `EXTRA_CA_FILE` (optional) names a PEM file of more CA certificates to trust, read once
//! at the first client built: for an RT server behind a private CA, and for the benchmark's
//! loopback TLS proxy with its self-signed CA.

use std::sync::{Arc, OnceLock};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};

use crate::config::{get, ConfigError, Lookup};

/// The variable naming a PEM file of extra CA certificates to trust.
pub const EXTRA_CA_FILE: &str = "EXTRA_CA_FILE";

/// The process's TLS configuration, made at the first use.
static TLS: OnceLock<Result<ClientConfig, ConfigError>> = OnceLock::new();

/// The shared rustls configuration: compiled-in roots plus `EXTRA_CA_FILE`, if set.
pub fn tls_config() -> Result<ClientConfig, ConfigError> {
    TLS.get_or_init(|| tls_config_from(&|var| std::env::var(var).ok())).clone()
}

/// Builds the rustls configuration from `lookup` (tests pass their own).
pub fn tls_config_from(lookup: Lookup<'_>) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = get(lookup, EXTRA_CA_FILE) {
        let fail = |problem: String| ConfigError { var: EXTRA_CA_FILE, problem };
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| fail(format!("cannot read PEM certificates from {path}: {e}")))?;
        if certs.is_empty() {
            return Err(fail(format!("{path} holds no PEM certificate")));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(format!("a certificate in {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError { var: EXTRA_CA_FILE, problem: format!("TLS set-up: {e}") })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A reqwest client builder on the shared TLS configuration; callers add their timeouts.
pub fn client_builder() -> Result<reqwest::ClientBuilder, ConfigError> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls_config()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_used_without_an_extra_file() {
        let config = tls_config_from(&|_| None).expect("builds");
        assert!(config.alpn_protocols.is_empty());
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100, "Mozilla's list is there");
    }

    #[test]
    fn an_unreadable_extra_ca_file_names_the_variable() {
        let err = tls_config_from(&|var| {
            (var == EXTRA_CA_FILE).then(|| "/nonexistent/rt-relay-ca.pem".to_owned())
        })
        .expect_err("fails");
        assert_eq!(err.var, EXTRA_CA_FILE);
        assert!(err.problem.contains("/nonexistent/rt-relay-ca.pem"), "{}", err.problem);
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("rt-relay-empty-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").expect("write");
        let p = path.to_string_lossy().into_owned();
        let err =
            tls_config_from(&|var| (var == EXTRA_CA_FILE).then(|| p.clone())).expect_err("fails");
        let _ = std::fs::remove_file(&path);
        assert!(err.problem.contains("no PEM certificate"), "{}", err.problem);
    }
}
