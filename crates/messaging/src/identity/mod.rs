//! The sending-identity port: a domain at the email provider, its DKIM tokens and verification
//! state (spec domains.md).

pub mod local;
pub mod ses;

use async_trait::async_trait;

/// The provider's view of a domain identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityState {
    /// Easy DKIM tokens; each becomes a `<token>._domainkey.<domain>` CNAME.
    pub dkim_tokens: Vec<String>,
    pub dkim: DkimStatus,
    pub mail_from: MailFromStatus,
    /// Provider region, for the MAIL FROM MX record (`feedback-smtp.<region>.amazonses.com`).
    pub region: String,
}

/// DKIM verification state, mapped to the spec's domain statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimStatus {
    Pending,
    Verified,
    Failed,
    TemporaryFailure,
}

/// MAIL FROM state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFromStatus {
    Pending,
    Success,
    Failed,
    TemporaryFailure,
}

/// Provider failures (→ 502 `EXTERNAL_SERVICE_ERROR`).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("email provider failed: {0}")]
    Provider(String),
    /// The provider already has this identity (e.g. created by another deployment).
    #[error("identity already exists at the provider")]
    AlreadyExists,
}

/// Sending identities at the email provider.
#[async_trait]
pub trait SendingIdentities: Send + Sync + 'static {
    /// Creates the identity with Easy DKIM (2048-bit) and sets its MAIL FROM domain.
    async fn create(
        &self,
        domain: &str,
        mail_from_domain: &str,
    ) -> Result<IdentityState, IdentityError>;
    /// Reads the current state (re-initiating a FAILED identity once is the caller's choice).
    async fn state(&self, domain: &str) -> Result<IdentityState, IdentityError>;
    /// Deletes the identity (absent is not an error).
    async fn delete(&self, domain: &str) -> Result<(), IdentityError>;
}
