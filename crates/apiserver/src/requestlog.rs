//! The API server's request log: one line per request, as the API server's audit log records
//! who asked for what (`2026-12-06T03:20:47.020Z GET /apis/networking.istio.io/v1/gateways?watch=true 200 "kube-rs/1.0"`).
//! It shows which clients read the cluster, and how: `egress up`'s gateways appear here with
//! their list and watch requests. Every byte a client chose (path, query, user agent) is
//! escaped, so a request cannot forge a line. Writes are best effort: a log that cannot be
//! written never fails a request.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// An open request log.
#[derive(Debug)]
pub struct RequestLog {
    file: Mutex<File>,
}

impl RequestLog {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<RequestLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog {
            file: Mutex::new(file),
        })
    }

    /// Records one request and the status it got.
    pub fn record(&self, method: &str, target: &str, status: u16, user_agent: &str) {
        let line = format!(
            "{} {} {} {status} \"{}\"\n",
            egress_store::rfc3339(std::time::SystemTime::now()),
            escape(method),
            escape(target),
            escape(user_agent)
        );
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Printable ASCII other than space, `"` and `\` as is; everything else as `\xNN`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_bytes_cannot_forge_a_line() {
        assert_eq!(
            escape("kube-rs\n2026 GET /forged 200 \"x\""),
            "kube-rs\\x0a2026\\x20GET\\x20/forged\\x20200\\x20\\x22x\\x22"
        );
        assert_eq!(escape("/api/v1/pods?watch=true"), "/api/v1/pods?watch=true");
    }
}
