//! Webhook signing secrets: `whsec_` followed by the standard base64 of the key bytes
//! (webhooks.md §1, Standard Webhooks "Symmetric signatures").

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

/// The prefix every secret carries.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of key material in a generated secret.
pub const GENERATED_KEY_LEN: usize = 32;

/// The key lengths accepted when parsing: Standard Webhooks recommends 24 to 64 bytes, and its
/// published test vectors use 24-byte keys.
pub const KEY_LEN_RANGE: std::ops::RangeInclusive<usize> = 24..=64;

/// Why a string is not a usable secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The string does not start with `whsec_`.
    #[error("secret must start with whsec_")]
    MissingPrefix,
    /// The part after the prefix is not standard base64.
    #[error("secret is not valid base64")]
    InvalidBase64,
    /// The decoded key is shorter than 24 or longer than 64 bytes.
    #[error("secret key must be 24 to 64 bytes long")]
    BadLength,
}

/// A webhook signing secret. Holds both the text form (stored and shown once to the user) and the
/// decoded key. `Debug` never prints either.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A fresh secret: `whsec_` + base64 of 32 bytes from the operating system's RNG.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        Self { text, key }
    }

    /// Parses a `whsec_…` string (surrounding whitespace ignored) into its key bytes.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        let encoded = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        if !KEY_LEN_RANGE.contains(&key.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self {
            text: raw.to_owned(),
            key,
        })
    }

    /// The `whsec_…` text, for storing and for the one response that reveals it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_prefix_and_32_random_bytes() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert!(a.expose().starts_with("whsec_"));
        // 32 bytes encode to 44 base64 characters with one `=` of padding.
        assert_eq!(a.expose().len(), "whsec_".len() + 44);
        assert_eq!(a.key().len(), 32);
        assert_ne!(a, b, "two generated secrets must differ");
    }

    #[test]
    fn a_generated_secret_parses_back_to_the_same_key() {
        let s = WebhookSecret::generate();
        let parsed = WebhookSecret::parse(s.expose()).unwrap();
        assert_eq!(parsed.key(), s.key());
        assert_eq!(parsed.expose(), s.expose());
    }

    #[test]
    fn the_standard_webhooks_test_secret_parses() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.key().len(), 24);
    }

    #[test]
    fn malformed_secrets_are_rejected() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::InvalidBase64)
        );
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::BadLength));
        // 16 bytes: too short.
        assert_eq!(
            WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(SecretError::BadLength)
        );
        let too_long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(WebhookSecret::parse(&too_long), Err(SecretError::BadLength));
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let s = WebhookSecret::generate();
        let shown = format!("{s:?}");
        assert!(!shown.contains(s.expose()));
        assert!(!shown.contains(&s.expose()["whsec_".len()..]));
        assert!(shown.contains("redacted"));
    }
}
