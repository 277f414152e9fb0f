//! What a downstream client may not decide: Envoy treats `x-envoy-*` request headers as
//! internal and removes them from external requests (its `x-envoy-internal` handling); a
//! gateway's clients are all external to it, so every `x-envoy-*` request header is removed
//! before anything reads the request: routing, authorization, the access log (a client's
//! `x-envoy-original-path` must not replace the logged path) and the upstream request. The
//! gateway sets the ones it owns (`x-envoy-original-path` on a rewrite, the attempt count,
//! the expected timeout) itself afterwards.

use http::HeaderMap;

/// Removes every `x-envoy-*` header a client sent.
pub fn strip_envoy_headers(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-envoy-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn removes_only_envoy_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-envoy-original-path", "/forged".parse().unwrap());
        h.append("x-envoy-max-retries", "9".parse().unwrap());
        h.append("x-envoy-max-retries", "8".parse().unwrap());
        h.insert("x-envoyish", "kept".parse().unwrap());
        h.insert("user-agent", "curl".parse().unwrap());
        strip_envoy_headers(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("x-envoyish") && h.contains_key("user-agent"));
    }
}
