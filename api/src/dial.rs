//! Dialling the master, for every client (the CLI, agents): `https://`
//! addresses go over TLS, trusting a given CA (PEM) or the system's roots;
//! a bearer token is never sent in plaintext to a host off loopback unless
//! the caller explicitly allows it.

use std::net::IpAddr;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("invalid master address '{url}': {reason} (expected e.g. http://127.0.0.1:5050)")]
    Address { url: String, reason: String },
    #[error("cannot set up TLS for {url}: {reason}")]
    Tls { url: String, reason: String },
    #[error(
        "refusing to send a token in plaintext to {url}, which is not on loopback: use https:// \
         (with --ca-file for a private CA), or set WASMESOS_ALLOW_PLAINTEXT=1 on a trusted network"
    )]
    Plaintext { url: String },
}

/// An endpoint for `url`; over TLS for `https://`, trusting `ca` if given
/// (else the system's roots).
pub fn endpoint(
    url: &str,
    ca: Option<&[u8]>,
    allow_plaintext: bool,
) -> Result<Endpoint, DialError> {
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| DialError::Address {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let uri = endpoint.uri();
    match uri.scheme_str() {
        Some("https") => {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = ca {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint.tls_config(tls).map_err(|e| DialError::Tls {
                url: url.to_string(),
                reason: e.to_string(),
            })
        }
        Some("http") => {
            let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
            let loopback =
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback && !allow_plaintext {
                return Err(DialError::Plaintext {
                    url: url.to_string(),
                });
            }
            Ok(endpoint)
        }
        _ => Err(DialError::Address {
            url: url.to_string(),
            reason: "the scheme must be http or https".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_to_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:5050",
            "http://localhost:1",
            "http://[::1]:5050",
        ] {
            assert!(endpoint(ok, None, false).is_ok(), "{ok}");
        }
        let remote = "http://10.0.0.5:5050";
        assert!(matches!(
            endpoint(remote, None, false),
            Err(DialError::Plaintext { .. })
        ));
        assert!(endpoint(remote, None, true).is_ok());
        assert!(endpoint("https://10.0.0.5:5050", None, false).is_ok());
        assert!(matches!(
            endpoint("ftp://x", None, false),
            Err(DialError::Address { .. })
        ));
    }
}
