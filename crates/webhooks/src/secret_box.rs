//! Webhook signing secrets encrypted at rest.
//!
//! Signing needs the secret itself, so it cannot be stored hashed like an API key; instead it is
//! sealed with AES-256-GCM under a data key that only the two functions that need it hold (the
//! webhooks API, which makes secrets, and the delivery worker, which signs with them). On AWS the
//! data key is stored wrapped by KMS and unwrapped once per cold start; locally it is a key file in
//! the data directory. Stored form: `enc1:` + base64url(nonce ‖ ciphertext ‖ tag), with the
//! webhook's id as associated data so a sealed secret moved to another webhook does not open.
//! A stored value without the prefix is a secret saved before encryption: it is read as it is and
//! sealed the next time its webhook is saved.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::path::Path;

/// Prefix of a sealed secret.
pub const SEALED_PREFIX: &str = "enc1:";
/// Bytes of a data key.
pub const DATA_KEY_LEN: usize = 32;

/// A sealed secret that does not open: another data key, or altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret cannot be opened with this data key")]
pub struct SealError;

/// Seals and opens webhook secrets with one data key.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    /// A box over a 32-byte data key.
    pub fn new(data_key: &[u8; DATA_KEY_LEN]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, data_key).expect("32 bytes make an AES-256 key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// A box over a fresh random key: for tests and processes whose secrets live only in memory.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; DATA_KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self::new(&key)
    }

    /// The box of the key file at `path` (64 hex characters), created with a fresh key, readable
    /// by its owner only, when missing.
    pub fn from_key_file(path: &Path) -> std::io::Result<Self> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        if !path.exists() {
            let mut key = [0u8; DATA_KEY_LEN];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            write_private(path, &hex)?;
        }
        let text = std::fs::read_to_string(path)?;
        let text = text.trim();
        if text.len() != DATA_KEY_LEN * 2 {
            return Err(invalid("the webhook key file must hold 64 hex characters"));
        }
        let mut key = [0u8; DATA_KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16)
                .map_err(|_| invalid("the webhook key file must hold 64 hex characters"))?;
        }
        Ok(Self::new(&key))
    }

    /// Seals `secret` for the webhook `webhook_id`.
    pub fn seal(&self, webhook_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(webhook_id.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a short secret cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret stored as `stored` for the webhook `webhook_id`; a value saved before
    /// encryption (no prefix) is returned as it is.
    pub fn open(&self, webhook_id: &str, stored: &str) -> Result<String, SealError> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(webhook_id.as_bytes()), &mut sealed)
            .map_err(|_| SealError)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError)
    }

    /// Whether `stored` is sealed (not a secret saved before encryption).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => file.write_all(text.as_bytes()),
        // Another process made it first: theirs is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_webhook() {
        let b = SecretBox::ephemeral();
        let sealed = b.seal("w1", SECRET);
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_") && !sealed.contains("MfKQ9r8"));
        assert_eq!(b.open("w1", &sealed).unwrap(), SECRET);
        assert_eq!(
            b.open("w2", &sealed),
            Err(SealError),
            "moved to another webhook"
        );
        assert_eq!(SecretBox::ephemeral().open("w1", &sealed), Err(SealError));
        assert_ne!(b.seal("w1", SECRET), sealed, "a fresh nonce each time");
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(b.open("w1", &altered), Err(SealError));
        assert_eq!(b.open("w1", "enc1:!!"), Err(SealError));
    }

    #[test]
    fn a_secret_saved_before_encryption_reads_as_it_is() {
        assert_eq!(SecretBox::ephemeral().open("w1", SECRET).unwrap(), SECRET);
        assert!(!SecretBox::is_sealed(SECRET));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("plunk-key-{}", uuid::Uuid::now_v7()));
        let path = dir.join("webhook-secrets.key");
        let first = SecretBox::from_key_file(&path).unwrap();
        let sealed = first.seal("w", SECRET);
        let again = SecretBox::from_key_file(&path).unwrap();
        assert_eq!(again.open("w", &sealed).unwrap(), SECRET);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
        std::fs::write(&path, "short").unwrap();
        assert!(SecretBox::from_key_file(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
