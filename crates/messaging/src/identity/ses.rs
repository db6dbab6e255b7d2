//! SES v2 sending identities: domain identities at Amazon SES (or an SES v2-compatible endpoint
//! such as moto) with Easy DKIM (2048-bit keys) and a custom MAIL FROM domain.
//!
//! `create` first reads the identity (`GetEmailIdentity`): one that exists is this deployment's
//! only when tagged `plunk:deployment = <deployment id>` (adoptable), else it belongs to someone
//! else in the account (the operator's own domain, another stack) and is never touched. A missing
//! one is made with `CreateEmailIdentity` carrying that tag, then
//! `PutEmailIdentityMailFromAttributes` (`BehaviorOnMxFailure = USE_DEFAULT_VALUE`); when the second
//! call fails, the new identity is deleted again so that nothing is left half made. Reading first
//! (rather than trusting `AlreadyExistsException`) also holds on endpoints that accept a second
//! create (moto). `state` is `GetEmailIdentity`; `delete` is
//! `DeleteEmailIdentity`, where an absent identity is not an error.
//!
//! Emulator gaps handled here (moto 5.2.5), narrowly, so that the local server can run against
//! moto end to end:
//! - `PutEmailIdentityMailFromAttributes` is missing: moto answers an HTML 404 without an AWS
//!   error code. Only that exact answer is tolerated (logged; MAIL FROM stays `Pending`); a real
//!   `NotFoundException` is still an error.
//! - For identities created with 2048-bit DKIM, moto writes `LastKeyGenerationTimestamp` as an
//!   ISO string where SES writes epoch seconds, and the SDK refuses the whole answer. For a 2xx
//!   answer the SDK could not read, the few fields used here (DKIM status and tokens, MAIL FROM
//!   status) are read from the JSON directly.

use super::{
    DkimStatus, IdentityError, IdentityState, MailFromStatus, SendingIdentities, DEPLOYMENT_TAG,
};
use async_trait::async_trait;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{
    BehaviorOnMxFailure, DkimAttributes, DkimSigningAttributes, DkimSigningKeyLength,
    DkimStatus as SesDkimStatus, MailFromDomainStatus, Tag,
};
use aws_sdk_sesv2::Client;

/// Used when the client has no region configured.
const DEFAULT_REGION: &str = "us-east-1";

/// Domain identities in SES v2.
#[derive(Debug, Clone)]
pub struct SesIdentities {
    client: Client,
    /// The value of the [`DEPLOYMENT_TAG`] on identities this deployment made.
    deployment: String,
}

impl SesIdentities {
    /// Wraps a client; `deployment` identifies this deployment (the stack name).
    pub fn new(client: Client, deployment: impl Into<String>) -> Self {
        Self {
            client,
            deployment: deployment.into(),
        }
    }

    /// The region the client talks to (for the MAIL FROM MX record).
    pub fn region(&self) -> String {
        self.client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| DEFAULT_REGION.into())
    }
}

impl SesIdentities {
    /// Whether the identity exists and, if so, its deployment tag: `None` = absent,
    /// `Some(None)` = exists untagged, `Some(Some(id))` = tagged with `id`.
    async fn owner(&self, domain: &str) -> Result<Option<Option<String>>, IdentityError> {
        match self
            .client
            .get_email_identity()
            .email_identity(domain)
            .send()
            .await
        {
            Ok(out) => Ok(Some(deployment_of(out.tags()))),
            Err(e) if e.code() == Some("NotFoundException") => Ok(None),
            Err(e) => match raw_json(&e) {
                // moto's answers the SDK cannot read: the tags from the JSON.
                Some(body) => Ok(Some(deployment_in_json(&body))),
                None => Err(provider_error("GetEmailIdentity", &e)),
            },
        }
    }

    /// The error for an identity that already exists with the deployment tag `owner`.
    fn existing(&self, owner: Option<&str>) -> IdentityError {
        if owner == Some(self.deployment.as_str()) {
            IdentityError::AlreadyExists
        } else {
            IdentityError::OwnedElsewhere
        }
    }
}

/// The value of the deployment tag among `tags`.
fn deployment_of(tags: &[Tag]) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == DEPLOYMENT_TAG)
        .map(|t| t.value().to_owned())
}

/// The deployment tag of a GetEmailIdentity answer read as JSON.
fn deployment_in_json(body: &serde_json::Value) -> Option<String> {
    body.get("Tags")?
        .as_array()?
        .iter()
        .find(|t| t.get("Key").and_then(|k| k.as_str()) == Some(DEPLOYMENT_TAG))?
        .get("Value")?
        .as_str()
        .map(str::to_owned)
}

#[async_trait]
impl SendingIdentities for SesIdentities {
    async fn create(
        &self,
        domain: &str,
        mail_from_domain: &str,
    ) -> Result<IdentityState, IdentityError> {
        if let Some(owner) = self.owner(domain).await? {
            return Err(self.existing(owner.as_deref()));
        }
        let created = self
            .client
            .create_email_identity()
            .email_identity(domain)
            .dkim_signing_attributes(
                DkimSigningAttributes::builder()
                    .next_signing_key_length(DkimSigningKeyLength::Rsa2048Bit)
                    .build(),
            )
            .tags(
                Tag::builder()
                    .key(DEPLOYMENT_TAG)
                    .value(&self.deployment)
                    .build()
                    .map_err(|e| IdentityError::Provider(e.to_string()))?,
            )
            .send()
            .await;
        let created = match created {
            Ok(out) => Snapshot::new(out.dkim_attributes(), None),
            // Made by someone else between the read and the create.
            Err(e) if e.code() == Some("AlreadyExistsException") => {
                let owner = self.owner(domain).await?.flatten();
                return Err(self.existing(owner.as_deref()));
            }
            Err(e) => lenient(&e).ok_or_else(|| provider_error("CreateEmailIdentity", &e))?,
        };

        let mail_from = self
            .client
            .put_email_identity_mail_from_attributes()
            .email_identity(domain)
            .mail_from_domain(mail_from_domain)
            .behavior_on_mx_failure(BehaviorOnMxFailure::UseDefaultValue)
            .send()
            .await;
        if let Err(e) = mail_from {
            if is_unsupported_operation(&e) {
                tracing::warn!(
                    domain,
                    "the SES endpoint does not support PutEmailIdentityMailFromAttributes; MAIL FROM left unset"
                );
            } else {
                let error = provider_error("PutEmailIdentityMailFromAttributes", &e);
                if let Err(cleanup) = self.delete(domain).await {
                    tracing::warn!(domain, error = %cleanup, "could not remove the half-created identity");
                }
                return Err(error);
            }
        }

        Ok(IdentityState {
            dkim_tokens: created.tokens,
            dkim: created.dkim,
            mail_from: MailFromStatus::Pending,
            region: self.region(),
        })
    }

    async fn state(&self, domain: &str) -> Result<IdentityState, IdentityError> {
        let identity = self
            .client
            .get_email_identity()
            .email_identity(domain)
            .send()
            .await;
        let snapshot = match identity {
            Ok(out) => Snapshot::new(
                out.dkim_attributes(),
                out.mail_from_attributes()
                    .map(|m| m.mail_from_domain_status()),
            ),
            Err(e) => lenient(&e).ok_or_else(|| provider_error("GetEmailIdentity", &e))?,
        };
        Ok(IdentityState {
            dkim_tokens: snapshot.tokens,
            dkim: snapshot.dkim,
            mail_from: snapshot.mail_from,
            region: self.region(),
        })
    }

    async fn delete(&self, domain: &str) -> Result<(), IdentityError> {
        match self
            .client
            .delete_email_identity()
            .email_identity(domain)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NotFoundException") => Ok(()),
            Err(e) => Err(provider_error("DeleteEmailIdentity", &e)),
        }
    }
}

/// The fields of a Create/GetEmailIdentity answer used here.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tokens: Vec<String>,
    dkim: DkimStatus,
    mail_from: MailFromStatus,
}

impl Snapshot {
    fn new(dkim: Option<&DkimAttributes>, mail_from: Option<&MailFromDomainStatus>) -> Self {
        Self {
            tokens: dkim.map(|d| d.tokens().to_vec()).unwrap_or_default(),
            dkim: map_dkim(dkim.and_then(|d| d.status())),
            mail_from: mail_from.map_or(MailFromStatus::Pending, map_mail_from),
        }
    }

    /// Reads the same fields from the JSON body of an answer.
    #[cfg(test)]
    fn from_json(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        value.is_object().then(|| Self::from_value(&value))
    }

    /// Reads the same fields from an answer's JSON.
    fn from_value(value: &serde_json::Value) -> Self {
        let dkim = value.get("DkimAttributes");
        let tokens = dkim
            .and_then(|d| d.get("Tokens"))
            .and_then(|t| t.as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let status = dkim
            .and_then(|d| d.get("Status"))
            .and_then(|s| s.as_str())
            .map(SesDkimStatus::from);
        let mail_from = value
            .get("MailFromAttributes")
            .and_then(|m| m.get("MailFromDomainStatus"))
            .and_then(|s| s.as_str())
            .map(MailFromDomainStatus::from);
        Self {
            tokens,
            dkim: map_dkim(status.as_ref()),
            mail_from: mail_from
                .as_ref()
                .map_or(MailFromStatus::Pending, map_mail_from),
        }
    }
}

/// The JSON body of a 2xx answer the SDK could not read (moto's timestamps).
fn raw_json<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<serde_json::Value> {
    let raw = match e {
        SdkError::ServiceError(ctx) if ctx.err().code().is_none() => ctx.raw(),
        SdkError::ResponseError(ctx) => ctx.raw(),
        _ => return None,
    };
    if !raw.status().is_success() {
        return None;
    }
    let body = serde_json::from_slice(raw.body().bytes()?).ok()?;
    tracing::warn!("SES answer not readable by the SDK (an emulator?); read leniently");
    Some(body)
}

/// A 2xx answer the SDK could not read, read leniently.
fn lenient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<Snapshot> {
    raw_json(e).map(|body| Snapshot::from_value(&body))
}

/// SUCCESS → Verified, FAILED → Failed, TEMPORARY_FAILURE → TemporaryFailure, anything else
/// (PENDING, NOT_STARTED, absent, unknown) → Pending.
fn map_dkim(status: Option<&SesDkimStatus>) -> DkimStatus {
    match status {
        Some(SesDkimStatus::Success) => DkimStatus::Verified,
        Some(SesDkimStatus::Failed) => DkimStatus::Failed,
        Some(SesDkimStatus::TemporaryFailure) => DkimStatus::TemporaryFailure,
        _ => DkimStatus::Pending,
    }
}

fn map_mail_from(status: &MailFromDomainStatus) -> MailFromStatus {
    match status {
        MailFromDomainStatus::Success => MailFromStatus::Success,
        MailFromDomainStatus::Failed => MailFromStatus::Failed,
        MailFromDomainStatus::TemporaryFailure => MailFromStatus::TemporaryFailure,
        _ => MailFromStatus::Pending,
    }
}

/// A 404 without an AWS error code: the endpoint does not know the operation (moto).
fn is_unsupported_operation<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(ctx) => {
            ctx.err().code().is_none() && ctx.raw().status().as_u16() == 404
        }
        _ => false,
    }
}

fn provider_error<E>(operation: &str, e: &SdkError<E, HttpResponse>) -> IdentityError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    IdentityError::Provider(match e {
        SdkError::ServiceError(ctx) if ctx.err().code().is_some() => format!(
            "SES {operation}: {}: {}",
            ctx.err().code().unwrap_or("error"),
            ctx.err().message().unwrap_or("no message")
        ),
        _ => format!("SES {operation}: {}", DisplayErrorContext(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dkim_statuses_map_to_the_spec_domain_statuses() {
        assert_eq!(
            map_dkim(Some(&SesDkimStatus::Success)),
            DkimStatus::Verified
        );
        assert_eq!(map_dkim(Some(&SesDkimStatus::Pending)), DkimStatus::Pending);
        assert_eq!(
            map_dkim(Some(&SesDkimStatus::NotStarted)),
            DkimStatus::Pending
        );
        assert_eq!(map_dkim(Some(&SesDkimStatus::Failed)), DkimStatus::Failed);
        assert_eq!(
            map_dkim(Some(&SesDkimStatus::TemporaryFailure)),
            DkimStatus::TemporaryFailure
        );
        assert_eq!(map_dkim(None), DkimStatus::Pending);
    }

    #[test]
    fn mail_from_statuses_map_one_to_one() {
        assert_eq!(
            map_mail_from(&MailFromDomainStatus::Success),
            MailFromStatus::Success
        );
        assert_eq!(
            map_mail_from(&MailFromDomainStatus::Pending),
            MailFromStatus::Pending
        );
        assert_eq!(
            map_mail_from(&MailFromDomainStatus::Failed),
            MailFromStatus::Failed
        );
        assert_eq!(
            map_mail_from(&MailFromDomainStatus::TemporaryFailure),
            MailFromStatus::TemporaryFailure
        );
    }

    #[test]
    fn tokens_come_from_the_dkim_attributes() {
        let attrs = DkimAttributes::builder()
            .tokens("tok1")
            .tokens("tok2")
            .tokens("tok3")
            .status(SesDkimStatus::Pending)
            .build();
        assert_eq!(
            Snapshot::new(Some(&attrs), Some(&MailFromDomainStatus::Success)),
            Snapshot {
                tokens: vec!["tok1".into(), "tok2".into(), "tok3".into()],
                dkim: DkimStatus::Pending,
                mail_from: MailFromStatus::Success,
            }
        );
        assert_eq!(
            Snapshot::new(None, None),
            Snapshot {
                tokens: vec![],
                dkim: DkimStatus::Pending,
                mail_from: MailFromStatus::Pending,
            }
        );
    }

    #[test]
    fn an_answer_the_sdk_refuses_is_read_from_its_json() {
        let body = br#"{"IdentityType":"DOMAIN","DkimAttributes":{"SigningEnabled":true,
            "Status":"SUCCESS","Tokens":["a","b","c"],"LastKeyGenerationTimestamp":"2026-11-26T14:08:28.832Z"},
            "MailFromAttributes":{"MailFromDomainStatus":"FAILED"}}"#;
        assert_eq!(
            Snapshot::from_json(body),
            Some(Snapshot {
                tokens: vec!["a".into(), "b".into(), "c".into()],
                dkim: DkimStatus::Verified,
                mail_from: MailFromStatus::Failed,
            })
        );
        assert_eq!(
            Snapshot::from_json(br#"{"DkimAttributes":{"Status":"NOT_STARTED"}}"#).map(|s| s.dkim),
            Some(DkimStatus::Pending)
        );
        assert_eq!(Snapshot::from_json(b"<html>"), None);
    }
}
