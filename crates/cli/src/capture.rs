//! `egress exec` (transparent capture, the default where possible): runs the command in a
//! network namespace of its own, with the Pod's IP on its loopback device and the Pod's name as
//! its hostname (a UTS namespace), whose outbound TCP is captured transparently, as an Istio
//! sidecar's iptables rules capture a Pod's:
//! `iptables -t nat -A OUTPUT -p tcp -j REDIRECT --to-ports 15001` sends every connection to
//! a relay inside the namespace, which reads the original destination (`SO_ORIGINAL_DST`) and
//! hands the connection to the Pod's sidecar as a tunnel to that destination. The sidecar then
//! treats it exactly as a captured connection (HTTP by Host, TLS by SNI, TCP by port). The
//! relay reaches the sidecar through a Unix socket served by the `egress exec` process, so the
//! namespace needs no network link at all: nothing can leave it except through the sidecar.
//! Names resolve through the namespace's `/etc/hosts` (`ip netns exec` mounts
//! `/etc/netns/<name>/hosts`), written from `egress up --host` and `--stand-in`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::OpError;

/// Where the relay listens inside the namespace (the REDIRECT target).
pub const RELAY_PORT: u16 = 15001;

fn run_ip(args: &[&str]) -> Result<(), OpError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| OpError::failed("--capture iptables needs iproute2 (`ip`)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(OpError::Environment(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The Pod a capture namespace stands for.
#[derive(Debug, Clone, Copy)]
pub struct PodNet<'a> {
    /// Its IP, added to the namespace's loopback device.
    pub ip: std::net::IpAddr,
    /// Its name, the command's hostname.
    pub hostname: &'a str,
}

/// A network namespace with the capture rules, removed (with its files) when dropped.
pub struct CaptureNamespace {
    name: String,
    relay: Option<Child>,
    dir: tempfile::TempDir,
    hostname: String,
}

impl CaptureNamespace {
    /// Creates the namespace (loopback up with the Pod's IP, a default route, the REDIRECT
    /// rule and `hosts`), starts the relay in it and the Unix-socket bridge to `sidecar` here.
    pub fn create(
        sidecar: SocketAddr,
        hosts: &str,
        pod: PodNet<'_>,
    ) -> Result<CaptureNamespace, OpError> {
        if !rustix::process::geteuid().is_root() {
            return Err(OpError::Environment(
                "--capture iptables needs root (it creates a network namespace and iptables rules)"
                    .into(),
            ));
        }
        let name = format!("egress-exec-{}", std::process::id());
        let dir = tempfile::tempdir().map_err(OpError::Output)?;
        run_ip(&["netns", "add", &name])?;
        let mut ns = CaptureNamespace {
            name,
            relay: None,
            dir,
            hostname: pod.hostname.to_owned(),
        };
        let etc = PathBuf::from("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&etc).map_err(OpError::Output)?;
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{hosts}"))
            .map_err(OpError::Output)?;
        ns.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        let prefix = if pod.ip.is_ipv4() { 32 } else { 128 };
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/{prefix}", pod.ip),
            "dev",
            "lo",
        ])?;
        // Every destination is routed to the loopback device; the REDIRECT below takes each
        // connection before it could go anywhere.
        ns.exec_ok(&["ip", "route", "add", "default", "dev", "lo"])?;
        ns.exec_ok(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "!",
            "-d",
            "127.0.0.1/32",
            "-j",
            "REDIRECT",
            "--to-ports",
            &RELAY_PORT.to_string(),
        ])?;
        let socket = ns.dir.path().join("sidecar.sock");
        let listener = UnixListener::bind(&socket).map_err(OpError::Output)?;
        std::thread::spawn(move || bridge(listener, sidecar));
        let exe = std::env::current_exe().map_err(OpError::Output)?;
        let mut relay = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(exe)
            .args(["capture-relay", "--unix"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(OpError::Output)?;
        let mut line = String::new();
        if let Some(out) = relay.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        ns.relay = Some(relay);
        if line.trim() != "ready" {
            return Err(OpError::Environment(
                "the capture relay did not start in the network namespace".into(),
            ));
        }
        Ok(ns)
    }

    fn exec_ok(&self, cmd: &[&str]) -> Result<(), OpError> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run_ip(&args)
    }

    /// `cmd` run inside the namespace.
    pub fn command(&self, program: &str, args: &[String]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        // The Pod's hostname, in a UTS namespace of the command's own (as a container has).
        c.args([
            "unshare",
            "--uts",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
        ])
        .arg(&self.hostname)
        .arg(program)
        .args(args);
        c
    }
}

impl Drop for CaptureNamespace {
    fn drop(&mut self) {
        if let Some(mut r) = self.relay.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
        let _ = run_ip(&["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// Joins each connection on the Unix socket to a new TCP connection to the sidecar.
fn bridge(listener: UnixListener, sidecar: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(unix) = conn else { continue };
        std::thread::spawn(move || {
            if let Ok(tcp) = TcpStream::connect(sidecar) {
                splice_unix_tcp(unix, tcp);
            }
        });
    }
}

fn splice_unix_tcp(unix: UnixStream, tcp: TcpStream) {
    let (Ok(mut unix_r), Ok(mut tcp_w)) = (unix.try_clone(), tcp.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut unix_r, &mut tcp_w);
        let _ = tcp_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut tcp_r, mut unix_w) = (tcp, unix);
    let _ = std::io::copy(&mut tcp_r, &mut unix_w);
    let _ = unix_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// The relay inside the namespace (`egress capture-relay`): accepts redirected connections,
/// and opens for each a tunnel to its original destination through the sidecar.
pub fn relay_main(unix: &Path) -> Result<(), OpError> {
    let listener = TcpListener::bind(("127.0.0.1", RELAY_PORT)).map_err(OpError::cause)?;
    println!("ready");
    let _ = std::io::stdout().flush();
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let unix = unix.to_path_buf();
        std::thread::spawn(move || {
            if let Err(e) = relay_one(client, &unix) {
                eprintln!("capture relay: {e}");
            }
        });
    }
    Ok(())
}

fn relay_one(client: TcpStream, unix: &Path) -> std::io::Result<()> {
    let dst = original_dst(&client)?;
    let mut sidecar = UnixStream::connect(unix)?;
    write!(sidecar, "CONNECT {dst} HTTP/1.1\r\nHost: {dst}\r\n\r\n")?;
    // The response head, byte by byte (nothing after it may be consumed here).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if sidecar.read(&mut byte)? == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Ok(());
    }
    let (Ok(mut client_r), Ok(mut sidecar_w)) = (client.try_clone(), sidecar.try_clone()) else {
        return Ok(());
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut sidecar_w);
        let _ = sidecar_w.shutdown(std::net::Shutdown::Write);
    });
    let mut client_w = client;
    let _ = std::io::copy(&mut sidecar, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
    Ok(())
}

fn original_dst(stream: &TcpStream) -> std::io::Result<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    socket
        .original_dst_v4()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("SO_ORIGINAL_DST returned a non-IP address"))
}
