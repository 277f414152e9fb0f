//! Service-account tokens of the local cluster: compact JWS tokens signed with ES256 (ECDSA
//! P-256, SHA-256), shaped as Kubernetes projects them (`iss`, `sub` =
//! `system:serviceaccount:<ns>:<sa>`, `aud`, `iat`, `nbf`, `exp`, `kubernetes.io`), minted by
//! [`LocalTokenIssuer`] and checked by [`LocalTokenReviewer`] the way a TokenReview would.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use super::server::{ReviewFuture, ServiceAccount, TokenReviewer};
use super::{CaError, ISTIO_CA_AUDIENCE};

/// How far `nbf`/`iat` may lie in the future (clock skew between the minting and the checking
/// side).
const NOT_BEFORE_LEEWAY: Duration = Duration::from_secs(60);

/// Mints service-account tokens with the cluster's signing key.
pub struct LocalTokenIssuer {
    issuer: String,
    pkcs8: Vec<u8>,
    key: EcdsaKeyPair,
}

impl fmt::Debug for LocalTokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTokenIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl LocalTokenIssuer {
    /// A new P-256 signing key for tokens whose `iss` is `issuer`.
    pub fn generate(issuer: &str) -> Result<Self, CaError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| CaError::TokenKey("generating a P-256 key failed".into()))?;
        Self::from_pkcs8(issuer, doc.as_ref())
    }

    /// Loads the signing key from a PKCS#8 `PRIVATE KEY` PEM block (as [`Self::pkcs8_pem`]
    /// writes it).
    pub fn from_pkcs8_pem(issuer: &str, pem: &str) -> Result<Self, CaError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(CaError::TokenKey("no PRIVATE KEY block found".into()));
        }
        let der = STANDARD
            .decode(body)
            .map_err(|e| CaError::TokenKey(format!("invalid base64 in the key: {e}")))?;
        Self::from_pkcs8(issuer, &der)
    }

    fn from_pkcs8(issuer: &str, der: &[u8]) -> Result<Self, CaError> {
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| CaError::TokenKey(format!("not a PKCS#8 P-256 key: {e}")))?;
        Ok(LocalTokenIssuer {
            issuer: issuer.to_string(),
            pkcs8: der.to_vec(),
            key,
        })
    }

    /// The signing key as a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn pkcs8_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for the service account `namespace/service_account`, for `audiences`, valid
    /// from now for `ttl` (what the kubelet projects into a Pod).
    pub fn mint(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        ttl: Duration,
    ) -> Result<String, CaError> {
        self.mint_at(
            namespace,
            service_account,
            audiences,
            SystemTime::now(),
            ttl,
        )
    }

    /// [`Self::mint`] with an explicit issue time.
    pub fn mint_at(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        issued_at: SystemTime,
        ttl: Duration,
    ) -> Result<String, CaError> {
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| CaError::TokenKey("issue time before 1970".into()))?
            .as_secs();
        let claims = json!({
            "aud": audiences,
            "exp": iat.saturating_add(ttl.as_secs()),
            "iat": iat,
            "iss": self.issuer,
            "nbf": iat,
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account},
            },
        });
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it for malformed tokens).
    pub fn sign(&self, claims: &Value) -> Result<String, CaError> {
        let header =
            json!({"alg": "ES256", "kid": key_id(self.key.public_key().as_ref()), "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| CaError::TokenKey("signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// A reviewer accepting this issuer's tokens for the audience `istio-ca`.
    pub fn reviewer(&self) -> LocalTokenReviewer {
        LocalTokenReviewer {
            issuer: self.issuer.clone(),
            public_key: self.key.public_key().as_ref().to_vec(),
            audience: ISTIO_CA_AUDIENCE.to_string(),
        }
    }
}

/// A short key id: the first 8 bytes of the public key's SHA-256, base64url.
fn key_id(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8])
}

/// Checks tokens of one [`LocalTokenIssuer`]: ES256 signature by its key, its `iss`, an `aud`
/// containing the CA's audience, `nbf`/`exp` around now, and a service-account `sub`.
#[derive(Clone)]
pub struct LocalTokenReviewer {
    issuer: String,
    public_key: Vec<u8>,
    audience: String,
}

impl fmt::Debug for LocalTokenReviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTokenReviewer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl LocalTokenReviewer {
    /// Reviews `token` at `now`: the service account it was issued to, or why it is refused.
    pub fn review_at(&self, token: &str, now: SystemTime) -> Result<ServiceAccount, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a compact JWS (header.claims.signature)".into());
        };
        let header = decode_json(header, "header")?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(format!(
                "unsupported token algorithm {}",
                header.get("alg").unwrap_or(&Value::Null)
            ));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "the token signature is not base64url".to_string())?;
        let signing_input = &token[..token.rfind('.').unwrap_or(0)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public_key)
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| "invalid token signature".to_string())?;
        let claims = decode_json(claims, "claims")?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss != self.issuer {
            return Err(format!("token issuer {iss:?} is not trusted"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.audience.as_str()) {
            return Err(format!(
                "token audiences {audiences:?} do not include {:?}",
                self.audience
            ));
        }
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_string())?
            .as_secs();
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or("the token has no exp")?;
        if now_secs >= exp {
            return Err(format!("token expired {}s ago", now_secs - exp));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_u64)
            && nbf > now_secs.saturating_add(NOT_BEFORE_LEEWAY.as_secs())
        {
            return Err("the token is not valid yet".into());
        }
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        ServiceAccount::from_subject(sub)
            .ok_or_else(|| format!("token subject {sub:?} is not a service account"))
    }
}

impl TokenReviewer for LocalTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a> {
        Box::pin(async move { self.review_at(token, SystemTime::now()) })
    }
}

fn decode_json(part: &str, what: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the token {what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("the token {what} is not JSON"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const ISS: &str = "https://kubernetes.default.svc.cluster.local";

    fn hour() -> Duration {
        Duration::from_secs(3600)
    }

    #[test]
    fn minted_tokens_review_to_their_service_account() {
        let issuer = LocalTokenIssuer::generate(ISS).unwrap();
        let token = issuer
            .mint("default", "sleep", &["istio-ca"], hour())
            .unwrap();
        let sa = issuer
            .reviewer()
            .review_at(&token, SystemTime::now())
            .unwrap();
        assert_eq!(sa.namespace, "default");
        assert_eq!(sa.name, "sleep");
        // A single-string aud is accepted too.
        let claims = json!({"iss": ISS, "aud": "istio-ca", "exp": u64::MAX / 2, "sub": "system:serviceaccount:a:b"});
        let t = issuer.sign(&claims).unwrap();
        assert!(issuer.reviewer().review_at(&t, SystemTime::now()).is_ok());
    }

    #[test]
    fn refusals_say_why() {
        let issuer = LocalTokenIssuer::generate(ISS).unwrap();
        let other = LocalTokenIssuer::generate(ISS).unwrap();
        let r = issuer.reviewer();
        let now = SystemTime::now();
        let wrong_aud = issuer.mint("default", "sleep", &["api"], hour()).unwrap();
        assert_eq!(
            r.review_at(&wrong_aud, now).unwrap_err(),
            "token audiences [\"api\"] do not include \"istio-ca\""
        );
        let expired = issuer
            .mint_at("default", "sleep", &["istio-ca"], now - 2 * hour(), hour())
            .unwrap();
        assert!(
            r.review_at(&expired, now)
                .unwrap_err()
                .starts_with("token expired")
        );
        let forged = other
            .mint("default", "sleep", &["istio-ca"], hour())
            .unwrap();
        assert_eq!(
            r.review_at(&forged, now).unwrap_err(),
            "invalid token signature"
        );
        let foreign = LocalTokenIssuer::from_pkcs8_pem("https://elsewhere", &issuer.pkcs8_pem())
            .unwrap()
            .mint("default", "sleep", &["istio-ca"], hour())
            .unwrap();
        assert!(
            r.review_at(&foreign, now)
                .unwrap_err()
                .contains("is not trusted")
        );
        let user = issuer
            .sign(&json!({"iss": ISS, "aud": ["istio-ca"], "exp": u64::MAX / 2, "sub": "alice"}))
            .unwrap();
        assert!(
            r.review_at(&user, now)
                .unwrap_err()
                .contains("not a service account")
        );
        assert!(r.review_at("abc", now).is_err());
        assert!(r.review_at("a.b.c.d", now).is_err());
        // Tampered claims break the signature.
        let mut parts: Vec<String> = issuer
            .mint("default", "sleep", &["istio-ca"], hour())
            .unwrap()
            .split('.')
            .map(String::from)
            .collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            json!({"iss": ISS, "aud": ["istio-ca"], "exp": u64::MAX / 2, "sub": "system:serviceaccount:kube-system:admin"}).to_string(),
        );
        assert_eq!(
            r.review_at(&parts.join("."), now).unwrap_err(),
            "invalid token signature"
        );
    }

    #[test]
    fn key_round_trips_through_pem() {
        let issuer = LocalTokenIssuer::generate(ISS).unwrap();
        let pem = issuer.pkcs8_pem();
        let again = LocalTokenIssuer::from_pkcs8_pem(ISS, &pem).unwrap();
        let token = again.mint("ns", "sa", &["istio-ca"], hour()).unwrap();
        assert!(
            issuer
                .reviewer()
                .review_at(&token, SystemTime::now())
                .is_ok()
        );
        assert!(LocalTokenIssuer::from_pkcs8_pem(ISS, "nothing").is_err());
    }
}
