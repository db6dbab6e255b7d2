//! Resource ids: UUIDv7, canonical lowercase hyphenated form (spec README §2 "IDs").

use uuid::Uuid;

/// A fresh UUIDv7; ids therefore sort by creation time.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A UUIDv7 derived from its parts: the time part is `at_ms` (Unix milliseconds), the other 74
/// bits come from SHA-256 of the parts, so the same parts always give the same id (a resumed
/// campaign fan-out, a repeated workflow step) while ids still sort by their time.
pub fn derived_id(at_ms: u64, parts: &[&[u8]]) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(at_ms, &random).into_uuid()
}

/// Parses a path or body id. Only the canonical 36-character hyphenated form is accepted; uppercase
/// hex is accepted and lowercased by `Uuid`'s own formatting. Anything else is `None`, which callers
/// report exactly like an unknown id.
pub fn parse_id(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::try_parse(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_ids_are_accepted_and_lowercased() {
        let id = parse_id("0193A1F2-5B7C-7D10-8A21-4F6E9C0D1A23").unwrap();
        assert_eq!(id.to_string(), "0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23");
    }

    #[test]
    fn non_canonical_forms_are_rejected() {
        assert!(parse_id("0193a1f25b7c7d108a214f6e9c0d1a23").is_none());
        assert!(parse_id("{0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23}").is_none());
        assert!(parse_id("nope").is_none());
    }

    #[test]
    fn derived_ids_are_stable_v7_ids_of_their_time() {
        let a = derived_id(1_700_000_000_000, &[b"campaign", b"contact"]);
        assert_eq!(a, derived_id(1_700_000_000_000, &[b"campaign", b"contact"]));
        assert_ne!(a, derived_id(1_700_000_000_000, &[b"campaig", b"ncontact"]));
        assert_ne!(a, derived_id(1_700_000_000_001, &[b"campaign", b"contact"]));
        assert_eq!(a.get_version_num(), 7);
        let (secs, _) = a.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_700_000_000);
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = new_id();
        let b = new_id();
        assert!(a.to_string() < b.to_string());
    }
}
