//! Projects and their API keys (spec admin-cli.md §2, README §5).

use crate::time::Timestamp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Default per-minute request limit of a project.
pub const DEFAULT_RATE_LIMIT: u32 = 1000;
/// Largest per-minute request limit a project may be given.
pub const MAX_RATE_LIMIT: u32 = 30_000;

/// Open and click tracking mode of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tracking {
    Enabled,
    Disabled,
    MarketingOnly,
}

impl std::str::FromStr for Tracking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ENABLED" => Ok(Self::Enabled),
            "DISABLED" => Ok(Self::Disabled),
            "MARKETING_ONLY" => Ok(Self::MarketingOnly),
            other => Err(format!(
                "unknown tracking mode '{other}' (ENABLED, DISABLED or MARKETING_ONLY)"
            )),
        }
    }
}

/// A project: the unit every API key, contact and email belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub rate_limit_per_minute: u32,
    pub tracking: Tracking,
    pub language: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Checks a project name: 1–100 characters.
pub fn valid_project_name(name: &str) -> bool {
    (1..=100).contains(&name.chars().count())
}

/// Checks a language tag: `^[a-z]{2}(-[A-Z]{2})?$`.
pub fn valid_language(tag: &str) -> bool {
    let b = tag.as_bytes();
    let base = b.len() >= 2 && b[..2].iter().all(u8::is_ascii_lowercase);
    match b.len() {
        2 => base,
        5 => base && b[2] == b'-' && b[3..].iter().all(u8::is_ascii_uppercase),
        _ => false,
    }
}

/// Secret keys work everywhere; public keys only on `POST /v1/track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Secret,
    Public,
}

impl KeyType {
    /// The plain key prefix: `sk_` or `pk_`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Secret => "sk_",
            Self::Public => "pk_",
        }
    }
}

/// What the store keeps of a key: never the plain value (admin-cli.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub key_id: Uuid,
    pub project_id: Uuid,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// Lowercase hex SHA-256 of the plain key.
    pub sha256: String,
    /// Prefix plus the last four characters, e.g. `sk_…9fQa`.
    pub hint: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

impl ApiKeyRecord {
    /// Usable now: neither revoked nor past its expiry.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A plain key, shown once. Its `Debug` hides the value so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    /// The plain value, for showing once to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

/// Generates a key of 256 random bits from the OS generator and the record that describes it.
pub fn generate_key(
    project_id: Uuid,
    key_type: KeyType,
    now: Timestamp,
) -> (PlainKey, ApiKeyRecord) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let plain = format!("{}{}", key_type.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let record = ApiKeyRecord {
        key_id: crate::id::new_id(),
        project_id,
        key_type,
        sha256: hash_key(&plain),
        hint: format!("{}…{}", key_type.prefix(), &plain[plain.len() - 4..]),
        created_at: now,
        revoked_at: None,
        expires_at: None,
    };
    (PlainKey(plain), record)
}

/// Lowercase hex SHA-256 of a plain key: the only form in which keys are stored or looked up.
pub fn hash_key(plain: &str) -> String {
    let digest = Sha256::digest(plain.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key's type when it has the exact shape `sk_`/`pk_` + 43 base64url characters.
pub fn key_shape(plain: &str) -> Option<KeyType> {
    let (key_type, rest) = if let Some(rest) = plain.strip_prefix("sk_") {
        (KeyType::Secret, rest)
    } else if let Some(rest) = plain.strip_prefix("pk_") {
        (KeyType::Public, rest)
    } else {
        return None;
    };
    let ok = rest.len() == 43
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(key_type)
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_only_their_hash_is_kept() {
        let (plain, record) = generate_key(crate::id::new_id(), KeyType::Secret, Timestamp::now());
        assert_eq!(key_shape(plain.expose()), Some(KeyType::Secret));
        assert_eq!(plain.expose().len(), 46);
        assert_eq!(record.sha256, hash_key(plain.expose()));
        assert!(!serde_json::to_string(&record)
            .unwrap()
            .contains(plain.expose()));
        assert!(record.hint.starts_with("sk_…"));
        assert!(plain
            .expose()
            .ends_with(&record.hint[record.hint.len() - 4..]));
        assert_eq!(format!("{plain:?}"), "PlainKey(<redacted>)");
    }

    #[test]
    fn malformed_keys_have_no_shape() {
        assert_eq!(key_shape("sk_short"), None);
        assert_eq!(key_shape(&format!("xk_{}", "a".repeat(43))), None);
        assert_eq!(
            key_shape(&format!("pk_{}", "a".repeat(43))),
            Some(KeyType::Public)
        );
        assert_eq!(key_shape(&format!("sk_{}=", "a".repeat(42))), None);
    }

    #[test]
    fn language_tags_follow_the_pattern() {
        assert!(valid_language("en"));
        assert!(valid_language("pt-BR"));
        assert!(!valid_language("EN"));
        assert!(!valid_language("pt-br"));
        assert!(!valid_language("eng"));
    }
}
