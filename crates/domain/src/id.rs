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
    let digest = digest_of(parts);
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(at_ms, &random).into_uuid()
}

/// Bits of [`ordered_id`]'s order: 33 (a campaign of up to 2^25 pages of up to 256 contacts).
pub const ORDER_BITS: u32 = 33;

/// A UUIDv7 derived from its parts whose random bits begin with `order` (below 2^[`ORDER_BITS`]):
/// the time part is `at_ms`, then `order`, then 41 bits from SHA-256 of the parts. Ids with the
/// same time sort by `order`, so a writer making them in order (a campaign fan-out, page by page)
/// appends to the end of the store's sorted index instead of touching a page of it per id; and
/// ids with a different `order` never collide.
pub fn ordered_id(at_ms: u64, order: u64, parts: &[&[u8]]) -> Uuid {
    const HASH_BITS: u32 = 74 - ORDER_BITS;
    let digest = digest_of(parts);
    let mut hash = [0u8; 16];
    hash[..16].copy_from_slice(&digest[..16]);
    let hash = u128::from_be_bytes(hash) & ((1u128 << HASH_BITS) - 1);
    let order = u128::from(order) & ((1u128 << ORDER_BITS) - 1);
    let bits = (order << HASH_BITS) | hash;
    // The 74 random bits of a UUIDv7 as `Builder` takes them: the low nibble of the first byte,
    // the second byte, the low six bits of the third byte (the rest are version and variant),
    // then seven whole bytes.
    let mut random = [0u8; 10];
    random[0] = ((bits >> 70) & 0x0f) as u8;
    random[1] = ((bits >> 62) & 0xff) as u8;
    random[2] = ((bits >> 56) & 0x3f) as u8;
    for (i, byte) in random[3..].iter_mut().enumerate() {
        *byte = ((bits >> (48 - 8 * i)) & 0xff) as u8;
    }
    uuid::Builder::from_unix_timestamp_millis(at_ms, &random).into_uuid()
}

fn digest_of(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
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
    fn ordered_ids_sort_by_their_order_and_never_collide_across_orders() {
        let at = 1_700_000_000_000;
        let ids: Vec<Uuid> = [0u64, 1, 2, 255, 256, 1 << 20, (1 << ORDER_BITS) - 1]
            .iter()
            .map(|o| ordered_id(at, *o, &[b"campaign", b"contact"]))
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0].to_string() < pair[1].to_string(), "{pair:?}");
        }
        let again = ordered_id(at, 256, &[b"campaign", b"contact"]);
        assert_eq!(again, ids[4]);
        assert_ne!(again, ordered_id(at, 256, &[b"campaign", b"other"]));
        assert_eq!(again.get_version_num(), 7);
        assert_eq!(again.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = again.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_700_000_000);
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = new_id();
        let b = new_id();
        assert!(a.to_string() < b.to_string());
    }
}
