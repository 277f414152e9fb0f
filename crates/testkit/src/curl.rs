//! Runs the real `curl` binary, as a user of the egress gateway would, with the flags the
//! tests need. `curl` ignores `~/.curlrc` (`-q`) and proxy environment variables
//! (`--noproxy '*'`) so only the test's own flags apply.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

use crate::{Result, io_err};

/// A marker separating the body from the status code in [`Curl::fetch`] output.
const STATUS_MARKER: &str = "\n__testkit_http_code__:";

/// The outcome of one curl run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlOutput {
    /// The HTTP status (`%{http_code}`); 0 when no response was received.
    pub status: u16,
    /// The response body ([`Curl::fetch`]) or curl's standard output.
    pub body: String,
    /// curl's standard error (with `-sS`: only the error message).
    pub stderr: String,
    /// curl's exit code (7: could not connect, 28: timeout, 35: TLS handshake failed,
    /// 52: empty reply, 56: receive failure, 60: certificate not trusted); -1 if killed.
    pub exit_code: i32,
}

/// A curl command line under construction.
#[derive(Debug, Clone)]
pub struct Curl {
    url: String,
    args: Vec<OsString>,
    max_time: Duration,
}

impl Curl {
    /// Whether a `curl` binary can be run. Tests that need it print why they are skipped when
    /// this is false.
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::process::Command::new("curl")
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// `curl -sS <url>`, with a 20 s `--max-time` guard against hangs.
    pub fn new(url: impl Into<String>) -> Self {
        Curl {
            url: url.into(),
            args: Vec::new(),
            max_time: Duration::from_secs(20),
        }
    }

    /// Adds raw arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--resolve <host>:<port>:<addr>`: connect to `addr` for `host:port` while keeping the
    /// URL's host for `Host` and SNI.
    pub fn resolve(self, host: &str, port: u16, addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        self.args(["--resolve".to_string(), format!("{host}:{port}:{addr}")])
    }

    /// `--connect-to <host>:<port>:<to_host>:<to_port>`: send a request for `host:port` to
    /// another address and port (e.g. a gateway listening on an ephemeral port).
    pub fn connect_to(self, host: &str, port: u16, to_host: &str, to_port: u16) -> Self {
        self.args([
            "--connect-to".to_string(),
            format!("{host}:{port}:{to_host}:{to_port}"),
        ])
    }

    /// `--cacert <path>`.
    pub fn cacert(self, path: &Path) -> Self {
        self.args([OsString::from("--cacert"), path.as_os_str().to_owned()])
    }

    /// `--cert <cert> --key <key>` (client certificate).
    pub fn client_cert(self, cert: &Path, key: &Path) -> Self {
        self.args([
            OsString::from("--cert"),
            cert.as_os_str().to_owned(),
            OsString::from("--key"),
            key.as_os_str().to_owned(),
        ])
    }

    /// `-H '<name>: <value>'`.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.args(["-H".to_string(), format!("{name}: {value}")])
    }

    /// `-X <method>`.
    pub fn method(self, method: &str) -> Self {
        self.args(["-X", method])
    }

    /// `--data-binary <body>`.
    pub fn data(self, body: &str) -> Self {
        self.args(["--data-binary", body])
    }

    /// `--http1.1`.
    pub fn http1_1(self) -> Self {
        self.args(["--http1.1"])
    }

    /// `--http2` (ALPN over TLS), or `--http2-prior-knowledge` for `http://` URLs.
    pub fn http2(self) -> Self {
        if self.url.starts_with("http://") {
            self.args(["--http2-prior-knowledge"])
        } else {
            self.args(["--http2"])
        }
    }

    /// `-k`.
    pub fn insecure(self) -> Self {
        self.args(["-k"])
    }

    /// `--max-time`, the guard against a hanging curl (default 20 s).
    pub fn max_time(mut self, max_time: Duration) -> Self {
        self.max_time = max_time;
        self
    }

    /// The full argument list (without the program name).
    pub fn command_line(&self, output: &[&str]) -> Vec<OsString> {
        let mut all: Vec<OsString> = ["-q", "-sS", "--noproxy", "*", "--max-time"]
            .iter()
            .map(OsString::from)
            .collect();
        all.push(format!("{:.3}", self.max_time.as_secs_f64()).into());
        all.extend(self.args.iter().cloned());
        all.extend(output.iter().map(OsString::from));
        all.push(self.url.clone().into());
        all
    }

    /// Runs `curl -sS -o /dev/null -w '%{http_code}' ...`: status, stderr and exit code.
    pub async fn status(&self) -> Result<CurlOutput> {
        let mut out = self.run(&["-o", "/dev/null", "-w", "%{http_code}"]).await?;
        out.status = out.body.trim().parse().unwrap_or(0);
        out.body.clear();
        Ok(out)
    }

    /// Runs curl keeping the body: status, body, stderr and exit code.
    pub async fn fetch(&self) -> Result<CurlOutput> {
        let write_out = format!("{STATUS_MARKER}%{{http_code}}");
        let mut out = self.run(&["-w", &write_out]).await?;
        if let Some(at) = out.body.rfind(STATUS_MARKER) {
            out.status = out.body[at + STATUS_MARKER.len()..]
                .trim()
                .parse()
                .unwrap_or(0);
            out.body.truncate(at);
        }
        Ok(out)
    }

    async fn run(&self, output: &[&str]) -> Result<CurlOutput> {
        let result = Command::new("curl")
            .args(self.command_line(output))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(io_err("running curl"))?;
        Ok(CurlOutput {
            status: 0,
            body: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
            exit_code: result.status.code().unwrap_or(-1),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn command_line_has_guards_flags_and_url_last() {
        let c = Curl::new("https://edition.cnn.com/politics")
            .resolve("edition.cnn.com", 443, "127.0.0.1".parse().unwrap())
            .header("x-a", "b")
            .max_time(Duration::from_secs(5));
        let line: Vec<String> = c
            .command_line(&["-o", "/dev/null"])
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            line,
            [
                "-q",
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                "5.000",
                "--resolve",
                "edition.cnn.com:443:127.0.0.1",
                "-H",
                "x-a: b",
                "-o",
                "/dev/null",
                "https://edition.cnn.com/politics"
            ]
        );
        let v6 = Curl::new("http://h/").resolve("h", 80, "::1".parse().unwrap());
        assert!(v6.command_line(&[]).contains(&OsString::from("h:80:[::1]")));
        assert!(
            Curl::new("http://h/")
                .http2()
                .command_line(&[])
                .contains(&OsString::from("--http2-prior-knowledge"))
        );
    }
}
