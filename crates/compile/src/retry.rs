//! Istio's retry policy conversion (`retry.ConvertPolicy`) and small value helpers.

use egress_model::resources::mesh::MeshConfig;
use egress_model::resources::virtual_service::HttpRetry;
use egress_model::validate::common::parse_go_duration;

use crate::snapshot::RetryPolicy;

/// MeshConfig `defaultHttpRetryPolicy`, when set and well-formed.
pub(crate) fn mesh_default_retry(mesh: &MeshConfig) -> Option<HttpRetry> {
    mesh.default_http_retry_policy
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// `ConvertPolicy`: no policy means Istio's default (2 attempts); `attempts` of 0 or less
/// means no retries at all; otherwise the default with the given attempts, `retryOn`
/// (numbers become retriable status codes) and `perTryTimeout`.
pub(crate) fn convert_retry(policy: Option<&HttpRetry>) -> Option<RetryPolicy> {
    let mut out = RetryPolicy::istio_default();
    let Some(p) = policy else {
        return Some(out);
    };
    let attempts = p.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    out.attempts = u32::try_from(attempts).unwrap_or(0);
    if let Some(on) = p.retry_on.as_deref().filter(|s| !s.is_empty()) {
        let (conditions, codes) = parse_retry_on(on);
        out.retry_on = conditions;
        out.retriable_status_codes = codes;
        if !out.retriable_status_codes.is_empty()
            && !out.retry_on.iter().any(|c| c == "retriable-status-codes")
        {
            out.retry_on.push("retriable-status-codes".to_owned());
        }
    }
    out.per_try_timeout = p
        .per_try_timeout
        .as_deref()
        .and_then(|t| parse_go_duration(t).ok())
        .filter(|d| !d.is_zero());
    Some(out)
}

/// Split `retryOn` into Envoy conditions and HTTP status codes (numbers Go knows a status
/// text for).
fn parse_retry_on(retry_on: &str) -> (Vec<String>, Vec<u16>) {
    let mut conditions = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(code) if known_status(code) => codes.push(code),
            _ => conditions.push(part.to_owned()),
        }
    }
    (conditions, codes)
}

/// Status codes Go's `http.StatusText` names.
fn known_status(code: u16) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// Decode base64 (standard alphabet, padding optional) as text; invalid input decodes to
/// what could be read.
pub(crate) fn base64_text(encoded: &str) -> String {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in encoded
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let Some(v) = value(c) else { break };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push(((acc >> bits) & 0xff) as u8);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_conversion() {
        assert_eq!(convert_retry(None), Some(RetryPolicy::istio_default()));
        let zero = HttpRetry {
            attempts: Some(0),
            ..Default::default()
        };
        assert_eq!(convert_retry(Some(&zero)), None);
        let p = HttpRetry {
            attempts: Some(3),
            retry_on: Some("5xx, 503,connect-failure".into()),
            per_try_timeout: Some("2s".into()),
            ..Default::default()
        };
        let r = convert_retry(Some(&p)).unwrap_or_else(RetryPolicy::istio_default);
        assert_eq!(r.attempts, 3);
        assert_eq!(
            r.retry_on,
            vec!["5xx", "connect-failure", "retriable-status-codes"]
        );
        assert_eq!(r.retriable_status_codes, vec![503]);
        assert_eq!(r.per_try_timeout, Some(std::time::Duration::from_secs(2)));
        // 599 has no Go status text: it stays a (bogus) condition, as in Istio.
        assert_eq!(parse_retry_on("599").0, vec!["599"]);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_text("aGVsbG8gd29ybGQ="), "hello world");
        assert_eq!(base64_text("aGk"), "hi");
    }
}
