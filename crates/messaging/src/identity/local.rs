//! Local stand-in for the provider's identities: no DNS and no network. A new identity is
//! `Pending`; the first status read (what `POST /domains/:id/verify` does) finds it verified, so
//! a developer can exercise every send path on `make dev`.

use super::{DkimStatus, IdentityError, IdentityState, MailFromStatus, SendingIdentities};
use async_trait::async_trait;

/// Identities that verify as soon as they are checked.
#[derive(Debug, Default, Clone)]
pub struct LocalIdentities;

fn tokens(domain: &str) -> Vec<String> {
    // Stable per domain, shaped like SES's 32-character tokens, clearly local.
    (1..=3)
        .map(|i| {
            let mut t = format!("local{i}{}", domain.replace(['.', '-'], ""));
            t.truncate(32);
            t
        })
        .collect()
}

#[async_trait]
impl SendingIdentities for LocalIdentities {
    async fn create(
        &self,
        domain: &str,
        _mail_from_domain: &str,
    ) -> Result<IdentityState, IdentityError> {
        Ok(IdentityState {
            dkim_tokens: tokens(domain),
            dkim: DkimStatus::Pending,
            mail_from: MailFromStatus::Pending,
            region: "local".into(),
        })
    }

    async fn state(&self, domain: &str) -> Result<IdentityState, IdentityError> {
        Ok(IdentityState {
            dkim_tokens: tokens(domain),
            dkim: DkimStatus::Verified,
            mail_from: MailFromStatus::Success,
            region: "local".into(),
        })
    }

    async fn delete(&self, _domain: &str) -> Result<(), IdentityError> {
        Ok(())
    }
}
