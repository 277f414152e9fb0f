//! Shared helpers for the CLI's integration tests: a throwaway store and the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use egress_store::Store;

/// A temporary store and the `egress` binary pointed at it.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The unprivileged user every command runs as (`None`: the test's own user).
    pub user: Option<u32>,
}

/// What a command printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self) -> Run {
        assert_ne!(
            self.code, 0,
            "command unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_egress")
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            dir: tempfile::tempdir().unwrap(),
            user: None,
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match self.user {
            None => Command::new(bin()),
            // As an unprivileged user: setpriv execs the binary (same pid), HOME in the
            // cluster's directory, which the user owns.
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".to_owned(),
                    "--".to_owned(),
                    bin().to_owned(),
                ]);
                c.env("HOME", self.dir.path().join("home"));
                c
            }
        };
        c.arg("--store").arg(self.store()).args(args);
        c.env_remove("EGRESS_STORE");
        // `egress up` merges its kubectl context here, never into the user's kubeconfig.
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }

    /// The kubeconfig `egress up` writes its context into.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A cluster whose commands all run as the unprivileged `uid` (the caller must be root):
    /// its directory belongs to that user.
    pub fn as_user(uid: u32) -> Cluster {
        let mut c = Cluster::new();
        let home = c.dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        for p in [c.dir.path(), home.as_path()] {
            std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
        }
        c.user = Some(uid);
        c
    }

    /// Run `egress ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Run `egress ARGS` with `input` on standard input.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Run a shell command line where `egress` means this binary and store.
    pub fn sh(&self, line: &str) -> Run {
        let o = Command::new("bash")
            .arg("-c")
            .arg(line)
            .env("EGRESS_STORE", self.store())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    Path::new(bin()).parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        Run::from(o)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn namespace(&self, ns: &str) {
        self.run_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        )
        .ok();
    }
}

/// The shared material beside the repository, if present.
pub fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    p.is_dir().then_some(p)
}

/// Replace the AGE column (last) of a kubectl table with `AGE`-independent text.
pub fn without_age(table: &str) -> String {
    table
        .lines()
        .map(|l| {
            let t = l.trim_end();
            match t.rfind("   ") {
                Some(i) => format!("{}   <age>", &t[..i]),
                None => t.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub const VARS: &[(&str, &str)] = &[
    ("$ISTIO_EGRESS_NAMESPACE", "aks-istio-egress"),
    ("$ISTIO_EGRESS_NAME", "asm-egress-test"),
    ("$EGRESS_GTW_SELECTOR", "asm-egress-test"),
    ("$ASM_REVISION", "asm-1-24"),
];

/// The seed's manifests: ```yaml blocks and `<<EOF` heredocs, in order.
pub fn seed_manifests(seed: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut in_yaml_block = false;
    for line in seed.lines() {
        if let Some(buf) = cur.as_mut() {
            if (in_yaml_block && line.trim_start().starts_with("```"))
                || (!in_yaml_block && line.trim() == "EOF")
            {
                out.push(cur.take().unwrap());
                in_yaml_block = false;
            } else {
                buf.push_str(line);
                buf.push('\n');
            }
        } else if line.trim_start() == "```yaml" {
            cur = Some(String::new());
            in_yaml_block = true;
        } else if line.contains("<<EOF") {
            cur = Some(String::new());
        }
    }
    out.into_iter()
        .map(|m| VARS.iter().fold(m, |acc, (k, v)| acc.replace(k, v)))
        .collect()
}

/// The seed's manifests, variables filled in, or `None` (with a printed reason) without ../shared.
pub fn seed() -> Option<Vec<String>> {
    let Some(shared) = shared() else {
        egress_testkit::skip("../shared (the seed) is not beside the repository");
        return None;
    };
    let text = std::fs::read_to_string(shared.join("seed/000_39c6bb10cf1ba6a2.txt")).unwrap();
    Some(seed_manifests(&text))
}

/// A running `egress up` (foreground, as a child process).
pub struct Up {
    pub child: Child,
    /// The block of the API's address when the test gave none (`--api-server`): every
    /// `egress up` of the suite serves its own API, so none depends on who got 6443 first.
    _api: Option<egress_testkit::addrs::Block>,
}

/// `flags`, with `--api-server <claimed>:6443` when they do not choose one.
fn with_api<'a>(
    flags: &[&'a str],
    api: &'a mut Option<(egress_testkit::addrs::Block, String)>,
) -> Vec<&'a str> {
    let mut args: Vec<&str> = flags.to_vec();
    if !flags.contains(&"--api-server") {
        let block = egress_testkit::addrs::Block::claim().unwrap();
        let addr = format!("{}:6443", block.ip(1));
        *api = Some((block, addr));
        if let Some((_, addr)) = api.as_ref() {
            args.push("--api-server");
            args.push(addr.as_str());
        }
    }
    args
}

/// A test's own Pod range and static egress pool for `egress up`: claimed loopback blocks
/// from the test kit's address plan, never hand-picked literals.
pub struct Addrs {
    /// Pod IPs (`--pod-range`).
    pub pods: egress_testkit::addrs::Block,
    /// Static egress prefixes (`--egress-ip-pool`).
    pub pool: egress_testkit::addrs::Block,
    /// The Kubernetes API's address (`--api-server`, port 6443 of the block's first address).
    pub api: egress_testkit::addrs::Block,
    flags: [String; 6],
}

impl Addrs {
    /// Claims a block for each.
    pub fn claim() -> Addrs {
        let pods = egress_testkit::addrs::Block::claim().unwrap();
        let pool = egress_testkit::addrs::Block::claim().unwrap();
        let api = egress_testkit::addrs::Block::claim().unwrap();
        let flags = [
            "--pod-range".to_owned(),
            pods.net().to_string(),
            "--egress-ip-pool".to_owned(),
            pool.net().to_string(),
            "--api-server".to_owned(),
            format!("{}:6443", api.ip(1)),
        ];
        Addrs {
            pods,
            pool,
            api,
            flags,
        }
    }

    /// `--pod-range R --egress-ip-pool P --api-server A` followed by `more`.
    pub fn flags<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut out: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        out.extend_from_slice(more);
        out
    }
}

impl Up {
    /// Starts it without waiting for its first pass to converge.
    pub fn spawn(c: &Cluster, flags: &[&str]) -> Up {
        let mut api = None;
        let flags = with_api(flags, &mut api);
        let mut args = vec!["up"];
        args.extend_from_slice(&flags);
        let mut child = c.command(&args).stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        Up {
            child,
            _api: api.map(|(block, _)| block),
        }
    }

    /// Starts `egress up FLAGS` and waits until its first pass has converged (`ready`).
    pub fn start(c: &Cluster, flags: &[&str]) -> Up {
        let mut api = None;
        let flags = with_api(flags, &mut api);
        let mut args = vec!["up"];
        args.extend_from_slice(&flags);
        let mut child = c
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let mut banner = Vec::new();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("egress up exited: {banner:#?}"))
                .unwrap();
            if line.starts_with("ready") {
                break;
            }
            banner.push(line);
        }
        assert!(
            banner[0].starts_with("egress local cluster (pid "),
            "{banner:?}"
        );
        assert!(banner.iter().any(|l| l.contains("store:")), "{banner:?}");
        // Keep reading its progress so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Up {
            child,
            _api: api.map(|(block, _)| block),
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The StaticGatewayConfiguration `aks-istio-egress/istio-egress-sgc` (and its namespace) that
/// the seed's `enable-egress-gateway` names.
pub const SGC_PREREQUISITES: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n";

/// `egress mesh enable-egress-gateway` for the seed's gateway (`asm-egress-test` in
/// `aks-istio-egress`, StaticGatewayConfiguration `istio-egress-sgc`), then waits until its two
/// Pods run ready.
pub fn enable_seed_gateway(c: &Cluster, store: &Store) {
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "asm-egress-test",
        "--gateway-configuration-name",
        "istio-egress-sgc",
        "-o",
        "none",
    ])
    .ok();
    wait_for(
        store,
        "2 running gateway pods",
        std::time::Duration::from_secs(60),
        |s| ready_pods(s, "aks-istio-egress").len() == 2,
    );
}

/// Runs the shell `line` until `ok` accepts its output, for up to 30 s (configuration reaches
/// sidecars and gateways asynchronously); panics with the last run otherwise.
pub fn until(c: &Cluster, line: &str, what: &str, ok: impl Fn(&Run) -> bool) -> Run {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = c.sh(line);
        if ok(&r) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: last run exit {}\nstdout:\n{}\nstderr:\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The Pods of namespace `ns` that run with their container ready.
pub fn ready_pods(store: &Store, ns: &str) -> Vec<serde_json::Value> {
    use serde_json::Value;
    store
        .list("", "Pod", Some(ns))
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                && p.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(true))
        })
        .collect()
}

/// Waits, following the store's change feed, until `cond` holds; panics after `timeout`.
pub fn wait_for(
    store: &Store,
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut(&Store) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let rv = store.resource_version().unwrap();
        if cond(store) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {timeout:?} waiting for {what}"
        );
        let mut w = store.watch(rv).unwrap();
        let _ = w.next_events(left.min(Duration::from_secs(1)));
    }
}

/// Collects a child's standard output and error (both piped) line by line as they arrive;
/// the returned counter is the number of streams that have ended (2 once the child closed
/// both).
pub fn collect_output(
    child: &mut std::process::Child,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::BufRead;
    use std::sync::atomic::Ordering;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let streams: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout is piped")),
        Box::new(child.stderr.take().expect("stderr is piped")),
    ];
    for stream in streams {
        let (log, closed) = (log.clone(), closed.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().expect("log lock").push(line);
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    (log, closed)
}

/// Waits (up to `timeout`) for a line of `log` containing every one of `needles`; the first
/// such line, or `None` when none came in time.
pub async fn wait_for_line(
    log: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    needles: &[&str],
    timeout: Duration,
) -> Option<String> {
    let find = || {
        log.lock()
            .expect("log lock")
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
    };
    let found = egress_testkit::eventually(timeout, || {
        let hit = find().is_some();
        async move { hit }
    })
    .await;
    found.ok().and_then(|_| find())
}
