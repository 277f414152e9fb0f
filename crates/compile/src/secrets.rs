//! Certificates for TLS termination and origination: `credentialName` Secrets in the
//! gateway's namespace (`tls.crt`/`tls.key`/`ca.crt`/`ca.crl` or `cert`/`key`/`cacert`/`crl`,
//! CA and CRL also from `<name>-cacert`), or file paths passed on as `file:<path>`.

use egress_model::resources::gateway::{Server, TlsMode};
use k8s_openapi::api::core::v1::Secret;

use crate::ctx::Ctx;
use crate::snapshot::{FILE_PREFIX, PemIdentity, ServerTls};

/// Suffix of the Secret holding only a CA for `credentialName`.
const CA_SUFFIX: &str = "-cacert";

/// A key of a Secret as text (`data` is already base64-decoded; `stringData` is plain).
fn key(s: &Secret, k: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(k))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(k).cloned()))
        .filter(|v| !v.trim().is_empty())
}

/// Certificate and key of a Secret: `tls.crt`/`tls.key`, else `cert`/`key`.
fn identity(s: &Secret) -> Option<PemIdentity> {
    let pair = |c: &str, k: &str| {
        Some(PemIdentity {
            cert_chain: key(s, c)?,
            private_key: key(s, k)?,
        })
    };
    pair("tls.crt", "tls.key").or_else(|| pair("cert", "key"))
}

/// CA bundle of a Secret: `ca.crt`, else `cacert`.
fn ca(s: &Secret) -> Option<String> {
    key(s, "ca.crt").or_else(|| key(s, "cacert"))
}

/// Certificate revocation list of a Secret: `ca.crl`, else `crl`.
fn crl(s: &Secret) -> Option<String> {
    key(s, "ca.crl").or_else(|| key(s, "crl"))
}

/// The CA of a `credentialName` with the revocation list beside it in the same Secret.
pub(crate) struct CredentialCa {
    /// CA bundle, PEM.
    pub ca: String,
    /// Certificate revocation list(s), PEM, when the Secret has `ca.crl`/`crl`.
    pub crl: Option<String>,
}

/// A file path as a snapshot value.
pub(crate) fn file(path: &str) -> String {
    format!("{FILE_PREFIX}{path}")
}

/// The Secret name of a `credentialName` (`kubernetes://` prefix allowed; other namespaces
/// are not looked up).
fn secret_name<'n>(ctx: &Ctx<'_>, credential: &'n str) -> Result<&'n str, String> {
    let name = credential
        .strip_prefix("kubernetes://")
        .unwrap_or(credential);
    match name.split_once('/') {
        Some((ns, n)) if ns == ctx.id.namespace => Ok(n),
        Some((ns, _)) => Err(format!(
            "credentialName {credential:?} names namespace {ns:?}; only Secrets in the \
             gateway's namespace {:?} are used",
            ctx.id.namespace
        )),
        None => Ok(name),
    }
}

/// Certificate and key from `credentialName`.
pub(crate) fn credential_identity(ctx: &Ctx<'_>, credential: &str) -> Result<PemIdentity, String> {
    let name = secret_name(ctx, credential)?;
    let s = ctx.secret(name).ok_or_else(|| {
        format!(
            "secret {}/{name} (credentialName) not found",
            ctx.id.namespace
        )
    })?;
    identity(s).ok_or_else(|| {
        format!(
            "secret {}/{name} has no tls.crt/tls.key (or cert/key)",
            ctx.id.namespace
        )
    })
}

/// CA bundle for `credentialName`: its own `ca.crt`/`cacert`, else the `<name>-cacert` Secret.
pub(crate) fn credential_ca(ctx: &Ctx<'_>, credential: &str) -> Result<String, String> {
    credential_ca_crl(ctx, credential).map(|c| c.ca)
}

/// [`credential_ca`] with the revocation list (`ca.crl`/`crl`) of the Secret the CA came from.
pub(crate) fn credential_ca_crl(ctx: &Ctx<'_>, credential: &str) -> Result<CredentialCa, String> {
    let name = secret_name(ctx, credential)?;
    let with_ca = |s: &Secret| ca(s).map(|ca| CredentialCa { ca, crl: crl(s) });
    ctx.secret(name)
        .and_then(with_ca)
        .or_else(|| ctx.secret(&format!("{name}{CA_SUFFIX}")).and_then(with_ca))
        .ok_or_else(|| {
            format!(
                "no CA certificate for credentialName {credential:?}: neither secret \
                 {ns}/{name} (ca.crt/cacert) nor {ns}/{name}{CA_SUFFIX}",
                ns = ctx.id.namespace
            )
        })
}

/// Downstream TLS of a terminating server (`BuildListenerTLSContext`).
pub(crate) fn server_tls(ctx: &Ctx<'_>, s: &Server) -> Result<ServerTls, String> {
    let Some(tls) = s.tls.as_ref() else {
        return Err("server has no TLS settings".into());
    };
    let sans = tls.subject_alt_names.clone().unwrap_or_default();
    let mode = tls.mode_or_default();
    if mode == TlsMode::IstioMutual {
        return Ok(ServerTls::IstioMutual {
            subject_alt_names: sans,
        });
    }
    let mutual = matches!(mode, TlsMode::Mutual | TlsMode::OptionalMutual);
    let credential = tls
        .credential_name
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            tls.credential_names
                .as_ref()
                .and_then(|c| c.first().cloned())
        });
    if tls.credential_names.as_ref().is_some_and(|c| c.len() > 1)
        || tls.tls_certificates.as_ref().is_some_and(|c| c.len() > 1)
    {
        ctx.warn(format!(
            "server {}: only the first certificate is served",
            s.port_name()
        ));
    }
    let (identity, client_ca) = if let Some(cred) = credential {
        let identity = credential_identity(ctx, &cred)?;
        let ca = if let Some(ca_cred) = tls.ca_cert_credential_name.as_deref() {
            Some(credential_ca(ctx, ca_cred)?)
        } else if mutual {
            Some(credential_ca(ctx, &cred)?)
        } else {
            None
        };
        (identity, ca)
    } else {
        let first = tls.tls_certificates.as_ref().and_then(|c| c.first());
        let cert = first
            .and_then(|c| c.server_certificate.clone())
            .or_else(|| tls.server_certificate.clone())
            .filter(|c| !c.is_empty());
        let key = first
            .and_then(|c| c.private_key.clone())
            .or_else(|| tls.private_key.clone())
            .filter(|c| !c.is_empty());
        let ca = first
            .and_then(|c| c.ca_certificates.clone())
            .or_else(|| tls.ca_certificates.clone())
            .filter(|c| !c.is_empty());
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err(format!(
                "{} TLS needs credentialName or serverCertificate and privateKey",
                mode.as_str()
            ));
        };
        (
            PemIdentity {
                cert_chain: file(&cert),
                private_key: file(&key),
            },
            ca.map(|c| file(&c)),
        )
    };
    if mutual && client_ca.is_none() {
        return Err(format!("{} TLS requires a client CA bundle", mode.as_str()));
    }
    Ok(ServerTls::Certificates {
        identity,
        optional: client_ca.is_some() && mode != TlsMode::Mutual,
        client_ca,
        subject_alt_names: sans,
    })
}
