//! Email addresses, parsed once (spec README §2 "Email addresses").

use serde::{Deserialize, Serialize};

/// A trimmed, lowercased address that matches the WHATWG "valid e-mail address" grammar, has a dot
/// in its ASCII domain, is at most 254 characters long and has a local part of at most 64.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

/// Why an address was refused; the message is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid email address")]
pub struct InvalidEmail;

const LOCAL_SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";

impl EmailAddress {
    /// Trims, validates and lowercases `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 || !trimmed.is_ascii() {
            return Err(InvalidEmail);
        }
        let (local, domain) = trimmed.split_once('@').ok_or(InvalidEmail)?;
        if local.is_empty() || local.len() > 64 {
            return Err(InvalidEmail);
        }
        if !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
        {
            return Err(InvalidEmail);
        }
        if !domain.contains('.') || !domain.split('.').all(valid_label) {
            return Err(InvalidEmail);
        }
        Ok(Self(trimmed.to_ascii_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (after `@`).
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

/// A WHATWG domain label: 1–63 alphanumerics or hyphens, not starting or ending with a hyphen.
fn valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        let e = EmailAddress::parse("  Kim@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "kim@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for bad in [
            "",
            "plain",
            "a@b",
            "a@-b.com",
            "a@b-.com",
            "a b@c.com",
            "a@b..com",
            "@b.com",
            "a@exämple.com",
            "a@@b.com",
            "\"q\"@b.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn length_limits_apply() {
        let local = "a".repeat(65);
        assert!(EmailAddress::parse(&format!("{local}@b.com")).is_err());
        let long_domain = format!("{}.com", ["abcdefghij"; 24].join("."));
        assert!(EmailAddress::parse(&format!("a@{long_domain}")).is_err());
        assert!(EmailAddress::parse("o'brien+tag@mail.example.org").is_ok());
    }
}
