//! The real `egress` binary as the soak drives it: one-shot commands (`apply`, `delete`,
//! `get`, `mesh ...`) on the soak's own store, each bounded in time, and `egress up` as a child
//! process (started, waited on until it prints `ready`, SIGKILLed, stopped with SIGTERM).
//! Health is read where Kubernetes' probes read it: each gateway Pod's
//! `<pod-ip>:15021/healthz/ready` and the workload sidecar's `<pod-ip>:15020/healthz/ready`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::SoakError;
use crate::client::probe;
use crate::manifests::NS;

/// Bound on every one-shot command except `mesh enable-egress-gateway`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The binary and the store it works on.
#[derive(Debug, Clone)]
pub struct Egress {
    bin: PathBuf,
    store: PathBuf,
    up_log: PathBuf,
}

/// A Pod as the soak needs it.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Its `istio` label (gateway Pods).
    pub istio: Option<String>,
    /// Its `app` label.
    pub app: Option<String>,
    /// `status.podIP`.
    pub ip: Option<IpAddr>,
}

impl Egress {
    /// `bin` working on the store at `store`; `egress up`'s output is appended to `up_log`.
    pub fn new(bin: &Path, store: &Path, up_log: &Path) -> Egress {
        Egress {
            bin: bin.to_owned(),
            store: store.to_owned(),
            up_log: up_log.to_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("EGRESS_STORE")
            // `egress up` merges its kubectl context here, not into the user's kubeconfig.
            .env("KUBECONFIG", self.store.with_extension("kubeconfig"))
            .kill_on_drop(true);
        c
    }

    /// Runs `egress ARGS` (with `stdin`), bounded by `timeout`; its standard output.
    pub async fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<String, SoakError> {
        let what = format!("egress {}", args.join(" "));
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SoakError::io(&self.bin, e))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| SoakError::io(&self.bin, e))?;
        }
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| SoakError::Command {
                what: what.clone(),
                detail: format!("no answer within {timeout:?}"),
            })?
            .map_err(|e| SoakError::io(&self.bin, e))?;
        if !out.status.success() {
            return Err(SoakError::Command {
                what,
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `egress apply -f -` (into the gateways' namespace unless the objects name their own).
    pub async fn apply(&self, yaml: &str, in_ns: bool) -> Result<(), SoakError> {
        let args: &[&str] = if in_ns {
            &["apply", "-n", NS, "-f", "-"]
        } else {
            &["apply", "-f", "-"]
        };
        self.run(args, Some(yaml), COMMAND_TIMEOUT).await.map(drop)
    }

    /// `egress delete KIND NAME -n NS --ignore-not-found`.
    pub async fn delete(&self, kind: &str, name: &str) -> Result<(), SoakError> {
        self.run(
            &["delete", kind, name, "-n", NS, "--ignore-not-found"],
            None,
            COMMAND_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// `egress mesh ARGS -o none`, bounded by `timeout`.
    pub async fn mesh(&self, args: &[&str], timeout: Duration) -> Result<(), SoakError> {
        let mut all = vec!["mesh"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "none"]);
        self.run(&all, None, timeout).await.map(drop)
    }

    /// The Pods of the gateways' namespace (`egress get pods -o json`).
    pub async fn pods(&self) -> Result<Vec<Pod>, SoakError> {
        let out = self
            .run(
                &["get", "pods", "-n", NS, "-o", "json"],
                None,
                COMMAND_TIMEOUT,
            )
            .await?;
        let v: Value = serde_json::from_str(&out).map_err(|e| SoakError::Command {
            what: "egress get pods -o json".to_owned(),
            detail: e.to_string(),
        })?;
        let text = |p: &Value, ptr: &str| p.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
        Ok(v.get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|p| Pod {
                        istio: text(p, "/metadata/labels/istio"),
                        app: text(p, "/metadata/labels/app"),
                        ip: text(p, "/status/podIP").and_then(|s| s.parse().ok()),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The egress IP prefix of StaticGatewayConfiguration `name`, once assigned.
    pub async fn egress_prefix(&self, name: &str) -> Result<Option<String>, SoakError> {
        let out = self
            .run(
                &[
                    "get",
                    "staticgatewayconfiguration",
                    name,
                    "-n",
                    NS,
                    "-o",
                    "jsonpath={.status.egressIpPrefix}",
                ],
                None,
                COMMAND_TIMEOUT,
            )
            .await?;
        let p = out.trim();
        Ok((!p.is_empty()).then(|| p.to_owned()))
    }

    /// Starts `egress up FLAGS` and waits (up to `timeout`) for its `ready` line.
    pub async fn start_up(&self, flags: &[String], timeout: Duration) -> Result<Up, SoakError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.up_log)
            .map_err(|e| SoakError::io(&self.up_log, e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| SoakError::io(&self.up_log, e))?;
        let mut args = vec!["up".to_owned()];
        args.extend_from_slice(flags);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self
            .command(&refs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_log))
            .spawn()
            .map_err(|e| SoakError::io(&self.bin, e))?;
        let pid = child.id().ok_or_else(|| SoakError::Command {
            what: "egress up".to_owned(),
            detail: "exited at once".to_owned(),
        })?;
        let Some(stdout) = child.stdout.take() else {
            return Err(SoakError::Command {
                what: "egress up".to_owned(),
                detail: "no standard output".to_owned(),
            });
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut log = tokio::fs::File::from_std(log);
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                if line.starts_with("ready") {
                    return true;
                }
            }
            false
        };
        let started = Instant::now();
        match tokio::time::timeout(timeout, ready).await {
            Ok(true) => {}
            Ok(false) => {
                let status = child.wait().await.ok();
                return Err(SoakError::Command {
                    what: "egress up".to_owned(),
                    detail: format!(
                        "exited before it was ready ({status:?}); see {}",
                        self.up_log.display()
                    ),
                });
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(SoakError::Command {
                    what: "egress up".to_owned(),
                    detail: format!("not ready within {timeout:?}"),
                });
            }
        }
        // Keep its standard output flowing into the log.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        Ok(Up {
            child,
            pid,
            started,
        })
    }

    /// Waits (up to `timeout`) until each of `gateways` has `replicas` Pods answering 200 on
    /// `:15021/healthz/ready` and the `curl` workload's sidecar answers 200 on
    /// `:15020/healthz/ready`; the sidecar's explicit-proxy address.
    pub async fn wait_healthy(
        &self,
        gateways: &[&str],
        replicas: usize,
        timeout: Duration,
    ) -> Result<SocketAddr, SoakError> {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match self.health(gateways, replicas).await {
                Ok(addr) => return Ok(addr),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(SoakError::NotHealthy {
                    after: timeout,
                    detail: why,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn health(&self, gateways: &[&str], replicas: usize) -> Result<SocketAddr, String> {
        let pods = self.pods().await.map_err(|e| e.to_string())?;
        for g in gateways {
            let mut healthy = 0;
            for ip in pods
                .iter()
                .filter(|p| p.istio.as_deref() == Some(g))
                .filter_map(|p| p.ip)
            {
                let addr = SocketAddr::new(ip, 15021);
                if probe(addr, "/healthz/ready", PROBE_TIMEOUT).await == Some(200) {
                    healthy += 1;
                }
            }
            if healthy < replicas {
                return Err(format!("gateway {g}: {healthy} of {replicas} pods ready"));
            }
        }
        let Some(ip) = pods
            .iter()
            .find(|p| p.app.as_deref() == Some("curl"))
            .and_then(|p| p.ip)
        else {
            return Err("no curl pod with an IP".to_owned());
        };
        match probe(SocketAddr::new(ip, 15020), "/healthz/ready", PROBE_TIMEOUT).await {
            Some(200) => Ok(SocketAddr::new(ip, 15001)),
            other => Err(format!("curl sidecar {ip}: health {other:?}")),
        }
    }
}

/// A running `egress up`.
#[derive(Debug)]
pub struct Up {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// When it was started.
    pub started: Instant,
}

impl Up {
    /// SIGKILL, then reap it.
    pub async fn kill(mut self) -> Result<(), SoakError> {
        self.child
            .start_kill()
            .map_err(|e| SoakError::io(Path::new("egress up"), e))?;
        let _ = self.child.wait().await;
        Ok(())
    }

    /// SIGTERM, then wait up to `grace` for it to exit (SIGKILL after that); whether it exited
    /// on its own in time.
    pub async fn stop(mut self, grace: Duration) -> bool {
        if let Ok(pid) = i32::try_from(self.pid)
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(_) => true,
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                false
            }
        }
    }
}

/// `VmRSS` of `pid` in KiB and its open descriptors, from `/proc`; `None` once it is gone.
pub fn rss_and_fds(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}
