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
    /// The provider already has this identity, made by this deployment (e.g. left by an earlier
    /// attempt): it may be adopted.
    #[error("identity already exists at the provider")]
    AlreadyExists,
    /// The provider has this identity, but not made by this deployment (the operator's own domain,
    /// or another stack's in the same account): it is never adopted.
    #[error("identity exists at the provider outside this deployment")]
    OwnedElsewhere,
}

/// The tag every identity this deployment creates carries; its value is the deployment's id.
pub const DEPLOYMENT_TAG: &str = "plunk:deployment";

/// Sending identities at the email provider.
#[async_trait]
pub trait SendingIdentities: Send + Sync + 'static {
    /// Creates the identity with Easy DKIM (2048-bit), tagged with the deployment's id, and sets
    /// its MAIL FROM domain. An existing identity answers [`IdentityError::AlreadyExists`] when it
    /// carries this deployment's tag and [`IdentityError::OwnedElsewhere`] otherwise.
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
