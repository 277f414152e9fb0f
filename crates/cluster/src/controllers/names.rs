//! Generated names as Kubernetes makes them: the pod-template hash in ReplicaSet names and the
//! five random characters of Pod names, from the alphabet without vowels or look-alikes.

use rand::Rng;
use serde_json::Value;

/// Kubernetes' alphabet for generated names (no vowels, no `0`, `1`, `3`).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Maps each character of `s` into the safe alphabet (as Kubernetes' `SafeEncodeString`).
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The `pod-template-hash` of a Deployment's pod template: stable for equal templates,
/// different when the template changes (up to 10 characters, as Kubernetes prints it).
pub fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let h = fnv1a(&[text.as_bytes()]);
    // Fold to 32 bits, as Kubernetes hashes into a uint32 before encoding its decimal form.
    let folded = u32::try_from((h ^ (h >> 32)) & 0xffff_ffff).unwrap_or_default();
    safe_encode(&folded.to_string())
}

/// Five random characters, as the ReplicaSet controller appends to Pod names.
pub fn pod_name_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHANUMS[rng.random_range(0..ALPHANUMS.len())]))
        .collect()
}

/// Five characters of the generated-name alphabet derived from some strings: a suffix that
/// looks like [`pod_name_suffix`] but is the same on every pass (EndpointSlice names).
pub fn stable_suffix(parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let mut h = fnv1a(&bytes);
    let base = ALPHANUMS.len() as u64;
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[usize::try_from(h % base).unwrap_or_default()];
            h /= base;
            char::from(c)
        })
        .collect()
}

/// A short deterministic hex hash of some strings (event names).
pub fn short_hash(parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    format!("{:016x}", fnv1a(&bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}});
        let b = json!({"metadata": {"labels": {"app": "y"}}, "spec": {"containers": []}});
        let ha = template_hash(&a);
        assert_eq!(ha, template_hash(&a.clone()));
        assert_ne!(ha, template_hash(&b));
        assert!(!ha.is_empty() && ha.len() <= 10);
        assert!(ha.bytes().all(|c| ALPHANUMS.contains(&c)));
    }

    #[test]
    fn suffixes_use_the_alphabet() {
        for _ in 0..100 {
            let s = pod_name_suffix();
            assert_eq!(s.len(), 5);
            assert!(s.bytes().all(|c| ALPHANUMS.contains(&c)));
        }
        assert_ne!(short_hash(&["ab", "c"]), short_hash(&["a", "bc"]));
        let stable = stable_suffix(&["ns", "web", "uid"]);
        assert_eq!(stable, stable_suffix(&["ns", "web", "uid"]));
        assert_ne!(stable, stable_suffix(&["ns", "web", "other-uid"]));
        assert_eq!(stable.len(), 5);
        assert!(stable.bytes().all(|c| ALPHANUMS.contains(&c)));
    }
}
