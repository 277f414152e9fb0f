//! Running a real Envoy for the interop tests: finding the release binary (`EGRESS_ENVOY`, the
//! venv `.ci/install-envoy` creates, or the benchmarks' venv), rendering a bootstrap template
//! of this directory, and child processes whose output is collected and which are killed on
//! drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_testkit::{Curl, eventually};

pub use egress_testkit::envoy::ENVOY_VERSION;
/// How long a process may take to become ready.
const READY: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Finding Envoy.

/// Envoy, or `None` after printing why the test is skipped. Also needs curl.
pub fn envoy_or_skip() -> Option<PathBuf> {
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return None;
    }
    let envoy = match egress_testkit::envoy::binary() {
        Ok(p) => p,
        Err(reason) => {
            egress_testkit::skip(&reason);
            return None;
        }
    };
    let out = Command::new(&envoy).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success(), "{} --version failed", envoy.display());
    if !version.contains(&format!("/{ENVOY_VERSION}/")) {
        println!("note: expected Envoy {ENVOY_VERSION}, running {version}");
    }
    Some(envoy)
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A child process whose standard output and error are collected line by line; killed on drop.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicUsize>,
}

impl Proc {
    /// Starts `cmd`, collecting its output; panics if it cannot be started.
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (log, closed) = crate::common::collect_output(&mut child);
        Proc {
            name,
            child,
            log,
            closed,
        }
    }

    /// Both output streams ended: the process is gone.
    pub fn exited(&self) -> bool {
        self.closed.load(Ordering::SeqCst) == 2
    }

    /// Everything printed so far, standard output and error interleaved by arrival.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The output under a heading with the process's name, for assertion messages.
    pub fn dump(&self) -> String {
        format!("--- {} ---\n{}", self.name, self.lines().join("\n"))
    }

    /// Waits until `url` answers 200 (a health or admin endpoint), failing early if the process
    /// exits.
    pub async fn wait_ok(&self, url: &str) {
        let ready = eventually(READY, || {
            let url = url.to_owned();
            async move {
                self.exited()
                    || Curl::new(url)
                        .max_time(Duration::from_secs(2))
                        .status()
                        .await
                        .is_ok_and(|o| o.status == 200)
            }
        })
        .await;
        assert!(
            ready.is_ok() && !self.exited(),
            "{} never answered 200 on {url}\n{}",
            self.name,
            self.dump()
        );
    }

    /// The first line containing every one of `needles`, waiting for it.
    pub async fn wait_line(&self, needles: &[&str]) -> String {
        let found = crate::common::wait_for_line(&self.log, needles, Duration::from_secs(10)).await;
        let Some(line) = found else {
            panic!(
                "{}: no line containing {needles:?}\n{}",
                self.name,
                self.dump()
            )
        };
        println!("{}: {line}", self.name);
        line
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Envoy (as `name` in messages) with the bootstrap template `tests/envoy/<template>`
/// rendered with `vars`, and waits until its admin endpoint (`<admin_ip>:15000`) reports ready.
pub async fn start_envoy(
    envoy: &Path,
    dir: &Path,
    name: &'static str,
    template: &str,
    admin_ip: &str,
    vars: &[(&str, String)],
) -> Proc {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/envoy")
            .join(template),
    )
    .unwrap();
    let path = dir.join(format!("envoy-{admin_ip}.yaml"));
    std::fs::write(&path, render(&text, vars)).unwrap();
    let proc = Proc::spawn(
        name,
        Command::new(envoy).arg("-c").arg(&path).args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            "warning",
            // Access logs reach the pipe promptly (Envoy's default is every 10 s).
            "--file-flush-interval-msec",
            "50",
        ]),
    );
    proc.wait_ok(&format!("http://{admin_ip}:15000/ready"))
        .await;
    proc
}

/// Fills `${NAME}` placeholders; every placeholder must be known.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let out = vars.iter().fold(template.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("${{{k}}}"), v)
    });
    let unfilled = out.split("${").skip(1).find(|rest| {
        rest.split_once('}').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
    });
    assert!(unfilled.is_none(), "unfilled placeholder in:\n{out}");
    out
}
