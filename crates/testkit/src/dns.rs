//! A stub DNS server on loopback: hand-written wire format, A and AAAA records, for tests of
//! name resolution (the resolved-address guard, `--dns-server`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A DNS server on 127.0.0.1 answering A and AAAA queries from a fixed table (NOERROR with
/// no answer for anything else).
pub struct StubDns {
    /// Where it answers.
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for StubDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubDns {
    /// Starts answering A queries from `table`.
    pub async fn start(table: &[(&str, Ipv4Addr)]) -> std::io::Result<StubDns> {
        let table: Vec<(&str, IpAddr)> =
            table.iter().map(|(n, ip)| (*n, IpAddr::V4(*ip))).collect();
        StubDns::start_any(&table).await
    }

    /// Starts answering `table`: an IPv4 address as an A record, an IPv6 one as AAAA.
    pub async fn start_any(table: &[(&str, IpAddr)]) -> std::io::Result<StubDns> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let table: HashMap<String, IpAddr> = table
            .iter()
            .map(|(n, ip)| (n.to_ascii_lowercase(), *ip))
            .collect();
        let queries = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&queries);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = answer(&buf[..n], &table) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Ok(StubDns {
            addr,
            queries,
            task,
        })
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The reply to one query: the header and question echoed, one A (AAAA) record when the
/// question is `A` (`AAAA`) for a name in `table` with an IPv4 (IPv6) address.
fn answer(query: &[u8], table: &HashMap<String, IpAddr>) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // Question: labels up to the root, then QTYPE and QCLASS.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question_end = i + 4;
    let question = query.get(12..question_end)?;
    let found = table
        .get(&labels.join("."))
        .filter(|ip| matches!((qtype, ip), (1, IpAddr::V4(_)) | (28, IpAddr::V6(_))));

    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[..2]); // id
    reply.extend_from_slice(&[0x81, 0x80]); // response, recursion desired + available, NOERROR
    reply.extend_from_slice(&[0, 1]); // one question
    reply.extend_from_slice(&[0, u8::from(found.is_some())]); // answers
    reply.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional
    reply.extend_from_slice(question);
    if let Some(ip) = found {
        reply.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        let (rtype, data) = match ip {
            IpAddr::V4(v4) => (1u16, v4.octets().to_vec()),
            IpAddr::V6(v6) => (28u16, v6.octets().to_vec()),
        };
        reply.extend_from_slice(&rtype.to_be_bytes());
        reply.extend_from_slice(&[0, 1]); // IN
        reply.extend_from_slice(&60u32.to_be_bytes()); // TTL
        reply.extend_from_slice(&u16::try_from(data.len()).unwrap_or(16).to_be_bytes());
        reply.extend_from_slice(&data);
    }
    Some(reply)
}
