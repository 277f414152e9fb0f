//! A real HTTP/1.1 forward proxy on loopback for tunnel tests: tinyproxy (Debian's package,
//! installed by `.ci/run`), as Istio's `tunneling_test.go` runs its `external-forward-proxy`,
//! serving `CONNECT` to the ports it is told. It is killed (by its own process id) when
//! dropped; a missing binary is a skip, which fails under `EGRESS_TEST_STRICT=1`.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::eventually;

/// Tinyproxy's port (Istio's HTTP/1.1 plain forward-proxy port).
pub const TINYPROXY_PORT: u16 = 3128;

/// Upper bound of the wait for it to listen.
const WAIT: Duration = Duration::from_secs(20);

/// A tinyproxy serving on `<ip>:3128`, allowing CONNECT to `ports` only.
pub struct Tinyproxy {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tinyproxy {
    /// Starts it and waits until it listens; `None` after reporting the skip when tinyproxy
    /// is not installed.
    ///
    /// # Panics
    /// When its configuration cannot be written or it does not listen in time.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn start(ip: IpAddr, ports: &[u16]) -> Option<Tinyproxy> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut conf = format!(
            "Port {TINYPROXY_PORT}\nListen {ip}\nTimeout 30\nMaxClients 16\nAllow 127.0.0.0/8\nLogLevel Info\n"
        );
        for p in ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        let path = dir.path().join("tinyproxy.conf");
        std::fs::write(&path, conf).expect("tinyproxy.conf written");
        let child = match Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                crate::skip(&format!("needs tinyproxy ({e})"));
                return None;
            }
        };
        let addr = SocketAddr::new(ip, TINYPROXY_PORT);
        let proxy = Tinyproxy {
            child,
            addr,
            _dir: dir,
        };
        eventually(WAIT, || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await
        .unwrap_or_else(|_| panic!("tinyproxy listens on {addr}"));
        Some(proxy)
    }
}
