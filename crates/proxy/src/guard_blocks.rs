//! The address space the resolved-address guard refuses: every block IANA's IPv4 and IPv6
//! special-purpose address registries mark not globally reachable (the rows are kept, with
//! their source, in `crates/proxy/data/iana-special-purpose.tsv`, and a test checks this table
//! against each row), multicast, the cloud metadata and platform endpoints, and every IPv6 form
//! that embeds an IPv4 address, judged by the embedded address.
//!
//! A more specific registry row takes precedence over a less specific one, as IANA's footnote
//! says (`192.0.0.9/32` is globally reachable inside the not-reachable `192.0.0.0/24`). Where
//! the registry says `N/A` (`192.88.99.0/24`, the deprecated 6to4 relay anycast) the block is
//! refused: nothing legitimate is served there. Forms embedding an IPv4 address are judged by
//! that address, because that is where a translator or tunnel delivers the connection:
//! IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` (RFC 6052),
//! 6to4 `2002::/16` (bits 16..48) and Teredo `2001::/32` (server in bits 32..64, client in the
//! last 32 bits inverted; refused when either is). The local-use NAT64 prefix `64:ff9b:1::/48`
//! (RFC 8215) is not globally reachable and refused whatever it embeds.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Azure's platform endpoint (WireServer), reachable from every Azure VM and AKS node.
const AZURE_WIRESERVER: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// Alibaba Cloud's metadata service.
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// The cloud metadata address (AWS, Azure, GCP, ...).
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The AWS IPv6 instance metadata address.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// IPv4 registry rows: block, prefix length, refusal reason (`None`: globally reachable).
const V4: &[([u8; 4], u8, Option<&str>)] = &[
    ([0, 0, 0, 0], 8, Some("this network")),
    ([0, 0, 0, 0], 32, Some("unspecified")),
    ([10, 0, 0, 0], 8, Some("private")),
    ([100, 64, 0, 0], 10, Some("shared address space (CGNAT)")),
    ([127, 0, 0, 0], 8, Some("loopback")),
    ([169, 254, 0, 0], 16, Some("link-local")),
    ([172, 16, 0, 0], 12, Some("private")),
    ([192, 0, 0, 0], 24, Some("IETF protocol assignments")),
    ([192, 0, 0, 0], 29, Some("IPv4 service continuity")),
    ([192, 0, 0, 8], 32, Some("IPv4 dummy address")),
    ([192, 0, 0, 9], 32, None),
    ([192, 0, 0, 10], 32, None),
    ([192, 0, 0, 170], 32, Some("NAT64/DNS64 discovery")),
    ([192, 0, 0, 171], 32, Some("NAT64/DNS64 discovery")),
    ([192, 0, 2, 0], 24, Some("documentation")),
    ([192, 31, 196, 0], 24, None),
    ([192, 52, 193, 0], 24, None),
    ([192, 88, 99, 0], 24, Some("deprecated 6to4 relay anycast")),
    ([192, 168, 0, 0], 16, Some("private")),
    ([192, 175, 48, 0], 24, None),
    ([198, 18, 0, 0], 15, Some("benchmarking")),
    ([198, 51, 100, 0], 24, Some("documentation")),
    ([203, 0, 113, 0], 24, Some("documentation")),
    ([224, 0, 0, 0], 4, Some("multicast")),
    ([240, 0, 0, 0], 4, Some("reserved")),
    ([255, 255, 255, 255], 32, Some("limited broadcast")),
];

/// IPv6 registry rows, as [`V4`]; the embedding prefixes are handled before this table.
const V6: &[([u16; 8], u8, Option<&str>)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, Some("loopback")),
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, Some("unspecified")),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        Some("local-use IPv4/IPv6 translation"),
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Some("discard-only")),
    ([0x100, 0, 0, 1, 0, 0, 0, 0], 64, Some("dummy prefix")),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        Some("IETF protocol assignments"),
    ),
    ([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, None),
    ([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, None),
    ([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, None),
    ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Some("benchmarking")),
    ([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, None),
    ([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, None),
    (
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        Some("deprecated ORCHID"),
    ),
    ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, None),
    ([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, None),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Some("documentation")),
    ([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, None),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Some("documentation")),
    (
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        Some("segment routing SIDs"),
    ),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Some("unique local")),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Some("link-local")),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Some("multicast")),
];

fn mask(bits: u32, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (bits - u32::from(len))) & (u128::MAX >> (128 - bits))
    }
}

/// The most specific row of `table` containing `addr` (`bits` wide) decides.
fn lookup(
    addr: u128,
    bits: u32,
    rows: impl Iterator<Item = (u128, u8, Option<&'static str>)>,
) -> Option<&'static str> {
    let mut best: Option<(u8, Option<&'static str>)> = None;
    for (net, len, why) in rows {
        let m = mask(bits, len);
        if addr & m == net & m && best.is_none_or(|(l, _)| len > l) {
            best = Some((len, why));
        }
    }
    best.and_then(|(_, why)| why)
}

/// Why `ip` is refused, or `None` when it is globally reachable.
pub(crate) fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == METADATA_V4 || ip == ALIBABA_METADATA {
        return Some("cloud metadata");
    }
    if ip == AZURE_WIRESERVER {
        return Some("cloud platform endpoint");
    }
    let rows = V4
        .iter()
        .map(|(o, len, why)| (u128::from(u32::from_be_bytes(*o)), *len, *why));
    lookup(u128::from(u32::from(ip)), 32, rows)
}

/// The IPv4 addresses an IPv6 address embeds, when it is one of the embedding forms.
fn embedded(ip: Ipv6Addr) -> Option<Vec<Ipv4Addr>> {
    let bits = u128::from(ip);
    let s = ip.segments();
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if bits >> 32 == 0xffff || (bits >> 32 == 0 && bits > 1) {
        // IPv4-mapped ::ffff:a.b.c.d; IPv4-compatible ::a.b.c.d (not :: or ::1).
        Some(vec![low])
    } else if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        Some(vec![low])
    } else if s[0] == 0x2002 {
        Some(vec![Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32)])
    } else if s[0] == 0x2001 && s[1] == 0 {
        let server = Ipv4Addr::from(((bits >> 64) & 0xffff_ffff) as u32);
        let client = Ipv4Addr::from(!((bits & 0xffff_ffff) as u32));
        Some(vec![server, client])
    } else {
        None
    }
}

/// Why `ip` is refused, or `None` when it is globally reachable.
pub(crate) fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == METADATA_V6 {
        return Some("cloud metadata");
    }
    if let Some(inner) = embedded(ip) {
        return inner.into_iter().find_map(refusal_v4);
    }
    let rows = V6
        .iter()
        .map(|(s, len, why)| (u128::from(Ipv6Addr::from(*s)), *len, *why));
    lookup(u128::from(ip), 128, rows)
}

#[cfg(test)]
#[path = "guard_blocks_tests.rs"]
mod tests;
