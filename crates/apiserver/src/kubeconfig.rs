//! The kubeconfig entry of the local cluster, merged the way kind and k3d merge theirs: the
//! cluster, user and context named `egress` replace any of the same name, everything else is
//! kept, `current-context` becomes `egress`, and the file is written atomically with mode 0600.
//! `egress down` leaves the entry (kind does the same; the next `egress up` refreshes it).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};

/// The name of the cluster, user and context.
pub const NAME: &str = "egress";

/// Why the kubeconfig could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The existing file is not a kubeconfig.
    #[error("{}: not a kubeconfig: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No location: neither `KUBECONFIG` nor `HOME` is set.
    #[error("cannot locate the kubeconfig: set KUBECONFIG or HOME")]
    NoLocation,
}

/// Where kubectl reads its configuration: the first path of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn default_path() -> Result<PathBuf, KubeconfigError> {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&list).next()
    {
        return Ok(first);
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".kube").join("config"))
        .ok_or(KubeconfigError::NoLocation)
}

/// What the entry says.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `https://127.0.0.1:6443`.
    pub server: &'a str,
    /// The CA that signed the serving certificate, PEM.
    pub ca_pem: &'a str,
    /// The bearer token.
    pub token: &'a str,
}

/// Merges `entry` into the kubeconfig at `path` (created if missing).
pub fn merge(path: &Path, entry: &Entry<'_>) -> Result<(), KubeconfigError> {
    let io = |source| KubeconfigError::Io {
        path: path.to_owned(),
        source,
    };
    let mut config = match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => parse(path, &text)?,
        Ok(_) => empty(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
        Err(e) => return Err(io(e)),
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(entry.ca_pem);
    upsert(
        &mut config,
        "clusters",
        json!({"name": NAME, "cluster": {"server": entry.server, "certificate-authority-data": ca}}),
    );
    upsert(
        &mut config,
        "users",
        json!({"name": NAME, "user": {"token": entry.token}}),
    );
    upsert(
        &mut config,
        "contexts",
        json!({"name": NAME, "context": {"cluster": NAME, "user": NAME}}),
    );
    config["current-context"] = Value::from(NAME);
    let text = egress_printers::yaml::to_yaml(&config);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.egress-tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config")
    ));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn empty() -> Value {
    json!({"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [], "contexts": []})
}

fn parse(path: &Path, text: &str) -> Result<Value, KubeconfigError> {
    let invalid = |message: String| KubeconfigError::Invalid {
        path: path.to_owned(),
        message,
    };
    let mut docs = egress_model::yaml::parse_stream(text).map_err(|e| invalid(e.to_string()))?;
    if docs.len() != 1 {
        return Err(invalid(format!("{} YAML documents", docs.len())));
    }
    let value = docs.remove(0).value;
    if !value.is_object() {
        return Err(invalid("not a mapping".into()));
    }
    Ok(value)
}

/// Replaces the element of list `field` named like `item`, or appends it.
fn upsert(config: &mut Value, field: &str, item: Value) {
    if !config[field].is_array() {
        config[field] = json!([]);
    }
    let Some(list) = config[field].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|e| e["name"] == item["name"]) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn merging_keeps_other_entries_and_switches_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube").join("config");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://prod.example:6443}\n- name: egress\n  cluster: {server: https://old:1}\nusers:\n- name: prod\n  user: {token: p}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: prod}\ncurrent-context: prod\n",
        )
        .unwrap();
        let entry = Entry {
            server: "https://127.0.0.1:6443",
            ca_pem: "-----BEGIN CERTIFICATE-----\n",
            token: "t0k",
        };
        merge(&path, &entry).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v = parse(&path, &text).unwrap();
        assert_eq!(v["current-context"], "egress");
        let names = |f: &str| -> Vec<String> {
            v[f].as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names("clusters"), ["prod", "egress"]);
        assert_eq!(names("users"), ["prod", "egress"]);
        assert_eq!(names("contexts"), ["prod", "egress"]);
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(v["users"][1]["user"]["token"], "t0k");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Idempotent.
        merge(&path, &entry).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_file_that_is_not_a_kubeconfig_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "- a\n- b\n").unwrap();
        let entry = Entry {
            server: "https://127.0.0.1:6443",
            ca_pem: "x",
            token: "t",
        };
        assert!(matches!(
            merge(&path, &entry),
            Err(KubeconfigError::Invalid { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "- a\n- b\n");
    }
}
