//! Request-path normalization, as Envoy's HTTP connection manager applies Istio's MeshConfig
//! `pathNormalization` (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`),
//! in Envoy's order:
//!
//! 1. DECODE_AND_MERGE_SLASHES only: `%2F`/`%2f` become `/` and `%5C`/`%5c` become `\`.
//! 2. BASE and above (RFC 3986 with Envoy's additions): a percent-encoded unreserved character
//!    (`A-Z a-z 0-9 - . _ ~`) is decoded, any other escape is kept as sent (nothing is
//!    decoded twice), `\` becomes `/`, characters a path may not carry raw are
//!    percent-encoded, and dot segments (`.`, `..`, also written `%2e`) are removed.
//! 3. MERGE_SLASHES and above: runs of `/` become one.
//!
//! A path carrying `%00` is refused (400, `path_normalization_failed`) in every mode, NONE
//! included, as Istio's normalization table says (Envoy itself forwards it under NONE); so is a
//! raw non-ASCII byte, which Envoy's HTTP/1 codec refuses. The query is never touched.
//!
//! The normalized path is what routing, AuthorizationPolicy, the upstream and the access log
//! see. [`strictest`] is the path as DECODE_AND_MERGE_SLASHES would make it; the gateway
//! also evaluates AuthorizationPolicies against it (see `crate::http`), which is stricter than
//! Istio (docs/limits.md, "Path normalization").

use std::borrow::Cow;

use egress_snapshot::snapshot::PathNormalization;

/// Why a path cannot be normalized (the request is answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejected {
    /// The path carries a percent-encoded NUL (`%00`).
    #[error("the path carries a percent-encoded NUL (%00)")]
    EncodedNul,
    /// The path carries a raw byte outside ASCII, which Envoy's HTTP/1 codec refuses before
    /// any normalization (percent-encoded, it is fine).
    #[error("the path carries a raw non-ASCII byte")]
    NonAscii,
}

impl PathRejected {
    /// The access-log response details Envoy gives the same refusal.
    pub fn details(self) -> &'static str {
        match self {
            PathRejected::EncodedNul => PATH_NORMALIZATION_FAILED,
            PathRejected::NonAscii => "http1.codec_error",
        }
    }
}

/// The access-log response details of a refused path (Envoy's).
pub const PATH_NORMALIZATION_FAILED: &str = "path_normalization_failed";

/// `path` (without the query) normalized by `mode`. Borrowed when nothing changes.
pub fn normalize(path: &str, mode: PathNormalization) -> Result<Cow<'_, str>, PathRejected> {
    if !path.is_ascii() {
        return Err(PathRejected::NonAscii);
    }
    if path.contains("%00") {
        return Err(PathRejected::EncodedNul);
    }
    // Only origin-form paths are normalized (`*` of `OPTIONS *` is left alone).
    if mode == PathNormalization::None || !path.starts_with(['/', '\\']) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = if mode >= PathNormalization::DecodeAndMergeSlashes {
        decode_slashes(path)
    } else {
        Cow::Borrowed(path)
    };
    let canonical = canonicalize(&decoded);
    let merged = if mode >= PathNormalization::MergeSlashes {
        merge_slashes(&canonical)
    } else {
        canonical
    };
    if merged == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(merged))
    }
}

/// `path` as the strictest mode (DECODE_AND_MERGE_SLASHES) makes it.
pub fn strictest(path: &str) -> Result<Cow<'_, str>, PathRejected> {
    normalize(path, PathNormalization::DecodeAndMergeSlashes)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XY` at `bytes[i]` encodes.
fn escaped_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex(*bytes.get(i + 1)?)?;
    let lo = hex(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// Step 1: `%2F` → `/`, `%5C` → `\` (either case), nothing else.
fn decode_slashes(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    if !bytes
        .windows(3)
        .any(|w| matches!(escaped_at(w, 0), Some(b'/' | b'\\')))
    {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match escaped_at(bytes, i) {
            Some(c @ (b'/' | b'\\')) => {
                out.push(char::from(c));
                i += 3;
            }
            _ => {
                // Copy one UTF-8 character (the path is a str; escapes are ASCII).
                let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&path[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    Cow::Owned(out)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a canonical path never carries raw (Chromium's path table, which Envoy's
/// `normalize_path` uses): controls, space, `"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}` and DEL.
/// (Non-ASCII bytes never get here: they are refused first.)
fn must_escape(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}')
}

/// Step 2: RFC 3986 normalization with Envoy's additions.
fn canonicalize(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(c) = escaped_at(bytes, i) {
            if unreserved(c) {
                out.push(char::from(c));
            } else {
                out.push_str(&path[i..i + 3]);
            }
            i += 3;
            continue;
        }
        if b == b'\\' {
            out.push('/');
        } else if must_escape(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    remove_dot_segments(&out)
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` dropped, `..` drops the segment before it
/// (never above the root); a trailing `.` or `..` leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|seg| seg == "." || seg == "..") {
        return path.to_owned();
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Step 3, as Envoy merges: the non-empty segments joined by `/`, with one leading and one
/// trailing `/` when the path had them (so a path of slashes only, such as `//`, stays `//`).
fn merge_slashes(path: &str) -> String {
    if !path.contains("//") {
        return path.to_owned();
    }
    let prefix = if path.starts_with('/') { "/" } else { "" };
    let suffix = if path.ends_with('/') { "/" } else { "" };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("{prefix}{}{suffix}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use PathNormalization::{Base, DecodeAndMergeSlashes, MergeSlashes, None};

    fn n(path: &str, mode: PathNormalization) -> String {
        normalize(path, mode)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_owned()
    }

    #[test]
    fn dot_segments() {
        assert_eq!(n("/a/b/../c/./d", Base), "/a/c/d");
        assert_eq!(n("/../a", Base), "/a");
        assert_eq!(n("/a/..", Base), "/");
        assert_eq!(n("/a/.", Base), "/a/");
        assert_eq!(n("/a/b/", Base), "/a/b/");
        assert_eq!(n("/a/%2e%2E/b", Base), "/b");
        assert_eq!(n("/a/.%2e/b", Base), "/b");
        assert_eq!(n("/a/..b/c", Base), "/a/..b/c");
    }

    #[test]
    fn only_unreserved_escapes_are_decoded_once() {
        assert_eq!(n("/%41%7a%30%2d%5f%7E", Base), "/Az0-_~");
        assert_eq!(n("/a%2fb%5Cc%3F%25", Base), "/a%2fb%5Cc%3F%25");
        assert_eq!(n("/%2561", Base), "/%2561");
        assert_eq!(n("/a%zzb%4", Base), "/a%zzb%4");
    }

    #[test]
    fn raw_characters_a_path_may_not_carry_are_escaped() {
        assert_eq!(n("/a\"b<c>{d}`", Base), "/a%22b%3Cc%3E%7Bd%7D%60");
        assert_eq!(n("/a^b|c", Base), "/a%5Eb%7Cc");
        assert_eq!(n("/a!$&'()*+,;=:@", Base), "/a!$&'()*+,;=:@");
        assert_eq!(normalize("/caf\u{e9}", None), Err(PathRejected::NonAscii));
    }

    #[test]
    fn nul_is_refused_in_every_mode() {
        for mode in [None, Base, MergeSlashes, DecodeAndMergeSlashes] {
            assert_eq!(normalize("/a%00b", mode), Err(PathRejected::EncodedNul));
        }
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        assert!(matches!(normalize("/a/b", Base), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("*", Base), Ok(Cow::Borrowed("*"))));
    }

    #[test]
    fn merge_slashes_is_applied_after_base() {
        assert_eq!(n("//a///b/", MergeSlashes), "/a/b/");
        assert_eq!(n("/a/\\b", MergeSlashes), "/a/b");
        assert_eq!(n("//a", Base), "//a");
        // Envoy's merge keeps one leading and one trailing slash: `//` stays `//`.
        assert_eq!(n("//", MergeSlashes), "//");
        assert_eq!(n("/./\\", MergeSlashes), "//");
        assert_eq!(n("/a//", MergeSlashes), "/a/");
    }
}
