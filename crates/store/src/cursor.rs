//! Cursors: the query position, encrypted and authenticated (AES-256-GCM) together with what it
//! is bound to (project, endpoint with path ids, filter parameters), base64url without padding.
//!
//! Layout before encoding: `secret id (1 byte) | nonce (12 bytes) | ciphertext of the position as
//! JSON | tag (16 bytes)`, with the binding as associated data. A cursor used elsewhere, or
//! altered, fails to open, and nothing in it can be read: not the project, the key layout or a
//! listed value (a suppressed address). Several secrets can be live at once: the current one
//! encrypts, every one opens, so rotating keeps old cursors valid. Each secret's AEAD key is
//! derived from it (HMAC-SHA256 over a fixed label), so the stored secret itself never keys a
//! cipher directly.

use crate::table::Position;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the AEAD tag.
const TAG_LEN: usize = 16;
/// Longest cursor accepted or produced.
pub const MAX_CURSOR_LEN: usize = 1024;

/// What a cursor is bound to: using it with anything else is an invalid cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorBinding(String);

impl CursorBinding {
    /// Binds to a project, an endpoint (e.g. `GET /contacts` or `GET /contacts/<id>/events`) and the
    /// filter parameters as `(name, value)` pairs; `limit` must not be among them.
    pub fn new(project: uuid::Uuid, endpoint: &str, filters: &[(&str, Option<&str>)]) -> Self {
        let mut s = format!("{project}\n{endpoint}");
        for (name, value) in filters {
            // Length-prefixed so no two filter sets serialise alike.
            match value {
                Some(v) => s.push_str(&format!("\n{name}={}:{v}", v.len())),
                None => s.push_str(&format!("\n{name}-")),
            }
        }
        Self(s)
    }
}

/// A cursor secret with a one-byte id.
#[derive(Clone)]
pub struct CursorSecret {
    pub id: u8,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for CursorSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CursorSecret({}, <redacted>)", self.id)
    }
}

/// The cursor was garbled, altered or bound to something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// Encrypts and opens cursors.
pub struct CursorCodec {
    keys: Vec<(u8, LessSafeKey)>,
    current: usize,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        write!(f, "CursorCodec(ids {ids:?}, current {})", ids[self.current])
    }
}

/// The AEAD key of a secret.
fn aead_key(secret: &CursorSecret) -> LessSafeKey {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.bytes).expect("HMAC takes any key length");
    mac.update(b"plunk cursor encryption v2");
    let derived = mac.finalize().into_bytes();
    let key = UnboundKey::new(&AES_256_GCM, &derived).expect("32 bytes make an AES-256 key");
    LessSafeKey::new(key)
}

impl CursorCodec {
    /// A codec over `secrets`, encrypting with the one whose id is `current` (else the first).
    /// Panics when `secrets` is empty.
    pub fn new(secrets: Vec<CursorSecret>, current: Option<u8>) -> Self {
        assert!(!secrets.is_empty(), "at least one cursor secret is needed");
        let current = current
            .and_then(|id| secrets.iter().position(|s| s.id == id))
            .unwrap_or(0);
        let keys = secrets.iter().map(|s| (s.id, aead_key(s))).collect();
        Self { keys, current }
    }

    /// The id of the encrypting secret.
    pub fn current_id(&self) -> u8 {
        self.keys[self.current].0
    }

    /// Encodes `position` for `binding`.
    pub fn encode(&self, binding: &CursorBinding, position: &Position) -> String {
        let (id, key) = &self.keys[self.current];
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut sealed = serde_json::to_vec(position).expect("positions serialise");
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding.0.as_bytes()),
            &mut sealed,
        )
        .expect("sealing a short cursor cannot fail");
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        bytes.push(*id);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Opens a cursor made for `binding`.
    pub fn decode(&self, binding: &CursorBinding, cursor: &str) -> Result<Position, InvalidCursor> {
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        if bytes.len() <= 1 + NONCE_LEN + TAG_LEN {
            return Err(InvalidCursor);
        }
        let (id, rest) = (bytes[0], &bytes[1..]);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| *k == id)
            .ok_or(InvalidCursor)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| InvalidCursor)?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(binding.0.as_bytes()), &mut sealed)
            .map_err(|_| InvalidCursor)?;
        serde_json::from_slice(plain).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Key;

    fn codec(id: u8, fill: u8) -> CursorCodec {
        CursorCodec::new(
            vec![CursorSecret {
                id,
                bytes: vec![fill; 32],
            }],
            None,
        )
    }

    fn position() -> Position {
        Position {
            key: Key::new("PROJECT#x#CONTACTS", "0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23"),
            gsi1: None,
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_binding() {
        let project = uuid::Uuid::now_v7();
        let binding = CursorBinding::new(project, "GET /contacts", &[("subscribed", Some("true"))]);
        let c = codec(1, 7);
        let cursor = c.encode(&binding, &position());
        assert!(cursor.len() <= MAX_CURSOR_LEN);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(c.decode(&binding, &cursor).unwrap(), position());
    }

    #[test]
    fn another_project_endpoint_or_filter_is_refused() {
        let project = uuid::Uuid::now_v7();
        let c = codec(1, 7);
        let binding = CursorBinding::new(project, "GET /contacts", &[("search", None)]);
        let cursor = c.encode(&binding, &position());
        for other in [
            CursorBinding::new(uuid::Uuid::now_v7(), "GET /contacts", &[("search", None)]),
            CursorBinding::new(project, "GET /events", &[("search", None)]),
            CursorBinding::new(project, "GET /contacts", &[("search", Some("a"))]),
        ] {
            assert_eq!(c.decode(&other, &cursor), Err(InvalidCursor));
        }
    }

    #[test]
    fn altered_or_garbled_cursors_are_refused() {
        let binding = CursorBinding::new(uuid::Uuid::now_v7(), "GET /contacts", &[]);
        let c = codec(1, 7);
        let cursor = c.encode(&binding, &position());
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(c.decode(&binding, &altered), Err(InvalidCursor));
        assert_eq!(c.decode(&binding, "!!!"), Err(InvalidCursor));
        assert_eq!(c.decode(&binding, ""), Err(InvalidCursor));
        assert_eq!(codec(1, 8).decode(&binding, &cursor), Err(InvalidCursor));
    }

    #[test]
    fn cursors_signed_by_a_previous_secret_stay_valid() {
        let binding = CursorBinding::new(uuid::Uuid::now_v7(), "GET /contacts", &[]);
        let old = codec(1, 7);
        let cursor = old.encode(&binding, &position());
        let rotated = CursorCodec::new(
            vec![
                CursorSecret {
                    id: 1,
                    bytes: vec![7; 32],
                },
                CursorSecret {
                    id: 2,
                    bytes: vec![9; 32],
                },
            ],
            Some(2),
        );
        assert_eq!(rotated.decode(&binding, &cursor).unwrap(), position());
        // The current secret encrypts.
        let fresh = rotated.encode(&binding, &position());
        assert_eq!(URL_SAFE_NO_PAD.decode(&fresh).unwrap()[0], 2);
    }

    #[test]
    fn a_cursor_reveals_nothing_of_its_position() {
        let binding = CursorBinding::new(uuid::Uuid::now_v7(), "GET /suppressions", &[]);
        let position = Position {
            key: Key::new(
                "PROJECT#0193a1f2#SUPPRESSION#gone@example.com",
                "SUPPRESSION",
            ),
            gsi1: None,
        };
        let c = codec(1, 7);
        let cursor = c.encode(&binding, &position);
        let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["gone", "example.com", "PROJECT", "SUPPRESSION", "0193a1f2"] {
            assert!(!text.contains(secret), "{secret} is readable in the cursor");
        }
        // Two cursors of one position differ (a fresh nonce each).
        assert_ne!(c.encode(&binding, &position), cursor);
        assert_eq!(c.decode(&binding, &cursor).unwrap(), position);
    }

    #[test]
    fn signed_cursors_of_the_previous_format_are_refused() {
        let binding = CursorBinding::new(uuid::Uuid::now_v7(), "GET /contacts", &[]);
        // id | 16-byte tag | JSON position: what the old codec produced.
        let mut old = vec![1u8];
        old.extend_from_slice(&[0u8; 16]);
        old.extend_from_slice(&serde_json::to_vec(&position()).unwrap());
        let old = URL_SAFE_NO_PAD.encode(old);
        assert_eq!(codec(1, 7).decode(&binding, &old), Err(InvalidCursor));
    }
}
