//! `egress exec [-n NS] POD [-c CONTAINER] -- CMD...`: runs a command as a Pod of the local
//! cluster. Images are not run, so the command runs on this machine, with the Pod's identity in
//! its environment and the local cluster's trusted CAs (`SSL_CERT_FILE`, `CURL_CA_BUNDLE`).
//! For a Pod with a sidecar, its outbound traffic goes through that sidecar:
//! * captured transparently by default (as a real Pod's iptables rules capture it), in a
//!   network namespace of the command's own with the Pod's IP and hostname
//!   ([`crate::capture`]): `curl` prints only the server's response, as in a real Pod. This
//!   needs root, `ip` and `iptables`;
//! * otherwise (or with `--capture proxy`) through the sidecar as an explicit proxy
//!   (`http_proxy`/`https_proxy` at the sidecar on the Pod IP), with a one-line notice on
//!   standard error: HTTPS clients then print the proxy's `200 Connection established` too.
//!
//! The exit code and the output are the command's own.

use std::process::Command;

use egress_cluster::controllers::{SIDECAR_PROXY_PORT, has_sidecar};
use egress_store::{ObjectKey, Store};
use serde_json::Value;

use crate::OpError;

/// What `exec` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecArgs {
    /// The Pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// `-n`.
    pub namespace: Option<String>,
    /// `-c`.
    pub container: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// How a sidecar Pod's traffic reaches its sidecar.
    pub capture: Capture,
}

/// How `exec` sends a sidecar Pod's outbound traffic to the sidecar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Capture {
    /// Transparently where this machine allows it (root, `ip`, `iptables`), else as an
    /// explicit proxy with a notice.
    #[default]
    Auto,
    /// Transparently, or fail (`--capture iptables`).
    Iptables,
    /// As an explicit proxy (`--capture proxy`).
    Proxy,
}

impl Capture {
    /// The `--capture` value: `iptables`, `proxy`, or none (auto).
    pub fn from_flag(flag: Option<&str>) -> Capture {
        match flag {
            Some("iptables") => Capture::Iptables,
            Some("proxy") => Capture::Proxy,
            _ => Capture::Auto,
        }
    }
}

/// Why transparent capture cannot run here, if it cannot (root, `ip` and `iptables` needed).
fn capture_unavailable() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("it needs root");
    }
    let runs = |program: &str| {
        std::process::Command::new(program)
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !runs("ip") {
        return Some("iproute2 (`ip`) is not installed");
    }
    if !runs("iptables") {
        return Some("iptables is not installed");
    }
    None
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The command to run as the Pod, environment set (and the capture namespace it runs in, which
/// must live until it exits); `Err` when the Pod cannot run it.
pub fn command(
    store: &Store,
    args: &ExecArgs,
) -> Result<(Command, Option<crate::capture::CaptureNamespace>), OpError> {
    let ns = args.namespace.as_deref().unwrap_or("default");
    let name = args
        .pod
        .strip_prefix("pod/")
        .or(args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod);
    let pod = store
        .get(&ObjectKey::new("", "Pod", Some(ns), name))
        .map_err(OpError::store)?
        .ok_or_else(|| {
            OpError::Reported(format!(
                "Error from server (NotFound): pods \"{name}\" not found"
            ))
        })?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = &args.container
        && !containers.contains(&c.as_str())
    {
        return Err(OpError::Reported(format!(
            "error: unable to upgrade connection: container not found (\"{c}\")"
        )));
    }
    let phase = text(&pod, "/status/phase");
    if phase != "Running" {
        return Err(OpError::Reported(format!(
            "error: unable to upgrade connection: pod {ns}/{name} is {}, not Running",
            if phase.is_empty() { "Pending" } else { phase }
        )));
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(OpError::Reported(
            "error: you must specify at least one command for the container".into(),
        ));
    };
    let transparent = match args.capture {
        Capture::Iptables => {
            if !has_sidecar(&pod) {
                return Err(OpError::Reported(format!(
                    "error: pod {ns}/{name} has no sidecar to capture its traffic"
                )));
            }
            true
        }
        Capture::Proxy => false,
        Capture::Auto if !has_sidecar(&pod) => false,
        Capture::Auto => match capture_unavailable() {
            None => true,
            Some(why) => {
                eprintln!(
                    "egress exec: transparent capture is unavailable ({why}); the sidecar is used as an explicit proxy (http_proxy/https_proxy)"
                );
                false
            }
        },
    };
    let capture = if transparent {
        let ip: std::net::IpAddr = text(&pod, "/status/podIP")
            .parse()
            .map_err(|_| OpError::Reported(format!("error: pod {ns}/{name} has no IP")))?;
        let hosts = std::fs::read_to_string(egress_cluster::up::hosts_path(store.dir()))
            .unwrap_or_default();
        Some(crate::capture::CaptureNamespace::create(
            std::net::SocketAddr::new(ip, SIDECAR_PROXY_PORT),
            &hosts,
            crate::capture::PodNet { ip, hostname: name },
        )?)
    } else {
        None
    };
    let mut cmd = match &capture {
        Some(ns) => ns.command(program, rest),
        None => {
            let mut c = Command::new(program);
            c.args(rest);
            c
        }
    };
    cmd.env("HOSTNAME", name)
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", ns);
    if has_sidecar(&pod) && capture.is_none() {
        if egress_cluster::up::running_pid(store.dir()).is_none() {
            return Err(OpError::Reported(format!(
                "error: pod {ns}/{name}'s sidecar is not running: the local cluster is not running (start it with \"egress up\")"
            )));
        }
        let ip = text(&pod, "/status/podIP");
        let proxy = format!("http://{ip}:{SIDECAR_PROXY_PORT}");
        for var in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            cmd.env(var, &proxy);
        }
        for var in ["no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"] {
            cmd.env_remove(var);
        }
    }
    let bundle = egress_cluster::up::ca_bundle_path(store.dir());
    if bundle.is_file() {
        for var in [
            "SSL_CERT_FILE",
            "CURL_CA_BUNDLE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
        ] {
            cmd.env(var, &bundle);
        }
    }
    Ok((cmd, capture))
}

/// Runs the command; returns its exit code (128 + signal when killed by one, 127 when it
/// cannot be started, as a container runtime reports).
pub fn run(store: &Store, args: &ExecArgs) -> Result<i32, OpError> {
    let (mut cmd, _capture) = command(store, args)?;
    match cmd.status() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            Ok(status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1))
        }
        Err(e) => {
            eprintln!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": {e}: unknown",
                args.command.first().map(String::as_str).unwrap_or_default()
            );
            Ok(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            })
        }
    }
}

/// `kubectl exec` through the local cluster's Kubernetes API: each command is prepared as
/// `egress exec` prepares it ([`command`]), transparent capture included.
pub struct PodRunner {
    store: Store,
}

impl PodRunner {
    /// A runner for the Pods of `store`.
    pub fn new(store: Store) -> PodRunner {
        PodRunner { store }
    }
}

impl egress_apiserver::exec::Runner for PodRunner {
    fn prepare(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<egress_apiserver::exec::Prepared, String> {
        let args = ExecArgs {
            pod: pod.to_owned(),
            namespace: Some(namespace.to_owned()),
            container: container.map(str::to_owned),
            command: command.to_vec(),
            capture: Capture::Auto,
        };
        let (command, capture) = self::command(&self.store, &args).map_err(|e| {
            let text = e.to_string();
            text.strip_prefix("error: ").unwrap_or(&text).to_owned()
        })?;
        Ok(egress_apiserver::exec::Prepared {
            command,
            keep: Box::new(capture),
        })
    }
}
