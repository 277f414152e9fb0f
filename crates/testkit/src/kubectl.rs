//! The real `kubectl` (the machine's `/usr/bin/kubectl`, v1.32 on CI) run against a kubeconfig,
//! with its own `HOME` so that its discovery cache is the test's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `kubectl` with a kubeconfig and a home directory.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    /// kubectl reading `kubeconfig`, its cache under `home`.
    pub fn new(kubeconfig: &Path, home: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_owned(),
            home: home.to_owned(),
        }
    }

    /// Whether a `kubectl` binary runs here.
    pub fn available() -> bool {
        Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The command, its standard streams piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `kubectl ARGS` with `stdin`.
    ///
    /// # Panics
    /// When kubectl cannot be started.
    #[allow(clippy::expect_used)]
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).spawn().expect("kubectl starts");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("kubectl's output")
    }

    /// Runs `kubectl ARGS` with `stdin` and returns its standard output.
    ///
    /// # Panics
    /// When it fails (with what it printed).
    #[track_caller]
    #[allow(clippy::panic)]
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let o = self.run(args, stdin);
        if !o.status.success() {
            panic!(
                "kubectl {args:?}: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}
