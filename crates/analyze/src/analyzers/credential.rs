//! Gateway credentials as istiod reads them (`ExtractCertInfo`, `ValidateCertificate`): a
//! Secret's certificate and key under `cert`/`key` or `tls.crt`/`tls.key`, the certificate a
//! PEM block of DER certificates all valid now.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use x509_parser::pem::Pem;
use x509_parser::prelude::{ASN1Time, parse_x509_certificate};

use crate::Input;

/// A Secret data key's bytes: `data` (base64) or, as the API server merges it, `stringData`.
fn data(secret: &Input, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = secret.get(&["data", key]).and_then(Value::as_str) {
        let compact: String = v.split_whitespace().collect();
        return STANDARD.decode(compact).ok();
    }
    secret
        .get(&["stringData", key])
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec())
}

/// The certificate bytes: both of `cert`/`key` non-empty, else both of `tls.crt`/`tls.key`.
fn certificate(secret: &Input) -> Option<Vec<u8>> {
    for (cert, key) in [("cert", "key"), ("tls.crt", "tls.key")] {
        let c = data(secret, cert).filter(|c| !c.is_empty());
        let k = data(secret, key).filter(|k| !k.is_empty());
        if let (Some(c), Some(_)) = (c, k) {
            return Some(c);
        }
    }
    None
}

/// Istio's `ValidateCertificate` at `now`: the first PEM block parses as one or more DER
/// certificates, each within its validity period.
fn valid_certificate(pem: &[u8], now: ASN1Time) -> bool {
    let Ok((block, _)) = Pem::read(std::io::Cursor::new(pem)) else {
        return false;
    };
    let mut der: &[u8] = &block.contents;
    if der.is_empty() {
        return false;
    }
    while !der.is_empty() {
        match parse_x509_certificate(der) {
            Ok((rest, cert)) => {
                if !cert.validity().is_valid_at(now) {
                    return false;
                }
                der = rest;
            }
            Err(_) => return false,
        }
    }
    true
}

/// Is the Secret a credential the gateway can serve now?
pub(super) fn valid(secret: &Input) -> bool {
    certificate(secret).is_some_and(|c| valid_certificate(&c, ASN1Time::now()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_and_pem() {
        let secret = |data: Value| {
            Input::new(
                json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": data}),
                None,
            )
            .unwrap_or_else(|| panic!("not an object"))
        };
        // Key names without a certificate pair.
        assert!(certificate(&secret(json!({"tls.cert": "YQ==", "tls.key": "YQ=="}))).is_none());
        // An empty key counts as missing.
        assert!(certificate(&secret(json!({"tls.crt": "YQ==", "tls.key": ""}))).is_none());
        assert_eq!(
            certificate(&secret(json!({"cert": "YQ==", "key": "Yg=="}))),
            Some(b"a".to_vec())
        );
        assert!(!valid_certificate(b"hush hush hush\n", ASN1Time::now()));
        assert!(!valid(&secret(
            json!({"cert": "aHVzaCBodXNoIGh1c2gK", "key": "YQ=="})
        )));
    }
}
