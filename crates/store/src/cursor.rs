//! Cursors (spec README §6): the query position, HMAC-SHA256-signed together with what it is bound
//! to (project, endpoint with path ids, filter parameters), base64url without padding.
//!
//! Layout before encoding: `secret id (1 byte) | tag (16 bytes) | position as JSON`. The tag covers
//! the binding and the position, so a cursor used elsewhere, or altered, fails verification. Several
//! secrets can be live at once (the newest signs, all verify), so rotating keeps old cursors valid.

use crate::table::Position;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// A signing secret with a one-byte id.
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

/// Signs and verifies cursors.
#[derive(Debug, Clone)]
pub struct CursorCodec {
    /// Newest first; the first one signs.
    secrets: Vec<CursorSecret>,
}

impl CursorCodec {
    /// A codec over `secrets`, the signing one first. Panics when empty.
    pub fn new(secrets: Vec<CursorSecret>) -> Self {
        assert!(!secrets.is_empty(), "at least one cursor secret is needed");
        Self { secrets }
    }

    fn tag(secret: &CursorSecret, binding: &CursorBinding, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&secret.bytes).expect("HMAC takes any key length");
        mac.update(binding.0.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// Encodes `position` for `binding`.
    pub fn encode(&self, binding: &CursorBinding, position: &Position) -> String {
        let secret = &self.secrets[0];
        let payload = serde_json::to_vec(position).expect("positions serialise");
        let tag = Self::tag(secret, binding, &payload).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(1 + TAG_LEN + payload.len());
        bytes.push(secret.id);
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        bytes.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor, checking its signature against `binding`.
    pub fn decode(&self, binding: &CursorBinding, cursor: &str) -> Result<Position, InvalidCursor> {
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        if bytes.len() <= 1 + TAG_LEN {
            return Err(InvalidCursor);
        }
        let (id, rest) = (bytes[0], &bytes[1..]);
        let (tag, payload) = rest.split_at(TAG_LEN);
        let secret = self
            .secrets
            .iter()
            .find(|s| s.id == id)
            .ok_or(InvalidCursor)?;
        Self::tag(secret, binding, payload)
            .verify_truncated_left(tag)
            .map_err(|_| InvalidCursor)?;
        serde_json::from_slice(payload).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Key;

    fn codec(id: u8, fill: u8) -> CursorCodec {
        CursorCodec::new(vec![CursorSecret {
            id,
            bytes: vec![fill; 32],
        }])
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
        let rotated = CursorCodec::new(vec![
            CursorSecret {
                id: 2,
                bytes: vec![9; 32],
            },
            CursorSecret {
                id: 1,
                bytes: vec![7; 32],
            },
        ]);
        assert_eq!(rotated.decode(&binding, &cursor).unwrap(), position());
    }
}
