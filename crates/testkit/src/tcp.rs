//! A raw TCP server on loopback that records who connected (for source-address and TCP
//! routing tests) and echoes what it receives, optionally after a banner (server-first
//! protocols such as MySQL).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::record::{ConnectionRecord, Gate, Log};
use crate::upstream::refuse;
use crate::wait::TimedOut;
use crate::{Result, io_err};

#[derive(Debug)]
struct Shared {
    connections: Log<ConnectionRecord>,
    gate: Gate,
    bytes_received: AtomicU64,
    banner: Vec<u8>,
}

/// A TCP echo server that records connections. Stops when dropped.
#[derive(Debug)]
pub struct TcpRecorder {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TcpRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpRecorder {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and echoes every connection.
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        Self::start_with_banner(addr, Vec::new()).await
    }

    /// Like [`TcpRecorder::start`], sending `banner` first on every connection.
    pub async fn start_with_banner(addr: SocketAddr, banner: Vec<u8>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io_err(format!("binding {addr}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let shared = Arc::new(Shared {
            connections: Log::new(),
            gate: Gate::default(),
            bytes_received: AtomicU64::new(0),
            banner,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(TcpRecorder {
            shared,
            local_addr,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// From now on, resets connections from sources outside `cidr` right after accepting them.
    pub fn allow_only(&self, cidr: &str) -> Result<()> {
        self.shared.gate.allow_only(cidr)
    }

    /// Accepts every source again.
    pub fn allow_all(&self) {
        self.shared.gate.allow_all();
    }

    /// The connections seen so far, refused ones included.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.connections.snapshot()
    }

    /// Total bytes received over all connections.
    pub fn bytes_received(&self) -> u64 {
        self.shared.bytes_received.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections were accepted or refused, then returns all.
    pub async fn wait_for_connections(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ConnectionRecord>, TimedOut> {
        self.shared
            .connections
            .wait_for(n, timeout, "connections")
            .await
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer_addr)) = accepted else { continue };
                let Ok(local_addr) = stream.local_addr() else { continue };
                let mut record = ConnectionRecord::plain(peer_addr, local_addr);
                if !shared.gate.admits(peer_addr.ip()) {
                    refuse(stream);
                    record.refused = true;
                    shared.connections.push(record);
                    continue;
                }
                shared.connections.push(record);
                conns.spawn(echo(stream, shared.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn echo(mut stream: TcpStream, shared: Arc<Shared>) {
    if !shared.banner.is_empty() && stream.write_all(&shared.banner).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                shared.bytes_received.fetch_add(n as u64, Ordering::SeqCst);
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}
