//! The tests' address plan: each test claims the loopback blocks it binds in, instead of
//! picking `127.x.y.z` literals by hand. A [`Block`] is a /24 of `127.128.0.0/10` (no test
//! or product default lives there) held by an exclusive `flock` on a file in the system's
//! temporary directory for as long as the `Block` lives, so tests running at the same time,
//! in one process or several (`cargo test` runs test binaries one after another, CI may run
//! several workspaces), never share addresses. A crashed test's lock dies with it.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::Ipv4Net;

use crate::{Error, Result, io_err};

/// The second octet of the first block (`127.128.0.0/24`).
const FIRST: u8 = 128;

/// How many /24 blocks the plan has (`127.128.0.0` to `127.191.255.0`).
const BLOCKS: u32 = 64 * 256;

/// Where a process starts looking, moved on by every claim.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A claimed /24 of loopback addresses, released when dropped.
#[derive(Debug)]
pub struct Block {
    net: Ipv4Net,
    _lock: File,
}

impl Block {
    /// Claims a free block. Fails when the lock directory cannot be made or every block is
    /// held.
    pub fn claim() -> Result<Block> {
        let dir = std::env::temp_dir().join("egress-test-addrs");
        std::fs::create_dir_all(&dir)
            .map_err(io_err(format!("address plan: {}", dir.display())))?;
        // Processes start at different places (their pid), so they rarely try the same
        // block first.
        let _ = NEXT.compare_exchange(
            u32::MAX,
            std::process::id().wrapping_mul(2_654_435_761) % BLOCKS,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        for _ in 0..BLOCKS {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % BLOCKS;
            if let Some(block) = try_claim(&dir, n) {
                return Ok(block);
            }
        }
        Err(Error::Io {
            context: format!("address plan: all {BLOCKS} loopback blocks are held"),
            source: std::io::ErrorKind::AddrInUse.into(),
        })
    }

    /// The block (`127.S.T.0/24`).
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// Address `host` of the block (`127.S.T.host`).
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.net.network().octets();
        Ipv4Addr::new(a, b, c, host)
    }

    /// A smaller network inside the block: `/prefix` (24 to 32, clamped) around `host` (a
    /// pod range or an egress prefix of its own).
    pub fn subnet(&self, host: u8, prefix: u8) -> Ipv4Net {
        let prefix = prefix.clamp(24, 32);
        Ipv4Net::new(self.ip(host), prefix).map_or(self.net, |n| n.trunc())
    }
}

fn try_claim(dir: &std::path::Path, n: u32) -> Option<Block> {
    let second = FIRST + u8::try_from(n / 256).ok()?;
    let third = u8::try_from(n % 256).ok()?;
    let path: PathBuf = dir.join(format!("127.{second}.{third}.0"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()?;
    file.try_lock().ok()?;
    let net = Ipv4Net::new(Ipv4Addr::new(127, second, third, 0), 24).ok()?;
    Some(Block { net, _lock: file })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn blocks_held_at_once_never_overlap_and_a_dropped_one_is_free_again() {
        let held: Vec<Block> = (0..50).map(|_| Block::claim().unwrap()).collect();
        let nets: BTreeSet<Ipv4Net> = held.iter().map(Block::net).collect();
        assert_eq!(nets.len(), 50);
        for b in &held {
            let [a, second, _, last] = b.net().network().octets();
            assert_eq!((a, last), (127, 0));
            assert!((128..192).contains(&second), "{}", b.net());
            assert!(b.net().contains(&b.ip(7)));
            assert_eq!(b.subnet(16, 28).network(), b.ip(16));
        }
        // Another claimant (a second process would see the same lock) cannot take one
        // that is held.
        let dir = std::env::temp_dir().join("egress-test-addrs");
        let first = held[0].net().network().octets();
        let n = u32::from(first[1] - FIRST) * 256 + u32::from(first[2]);
        assert!(
            try_claim(&dir, n).is_none(),
            "a held block was claimed again"
        );
        drop(held);
        assert!(try_claim(&dir, n).is_some(), "a released block stays held");
    }
}
