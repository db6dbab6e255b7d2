//! SES v2 mailer: sends through Amazon SES (`SendEmail` with raw content built by
//! [`super::mime`]), or any SES v2-compatible endpoint such as moto.
//!
//! Each send carries the configuration set (the email's, else the mailer's default) and the tags
//! `email_id=<uuid>` and `project_id=<uuid>`, so SES events find their email record (whose key
//! needs both). Errors map to the worker's three
//! cases: throttling ([`MailError::Throttled`]), refusals that a retry cannot fix
//! ([`MailError::Permanent`]), and everything else, including 5xx and network failures
//! ([`MailError::Transient`]). Message bodies are never logged.

use super::{mime, MailError, Mailer, OutgoingEmail};
use async_trait::async_trait;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::config::BehaviorVersion;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use aws_sdk_sesv2::Client;

/// The tag that carries the platform's email id on every message.
pub use plunk_domain::feedback::EMAIL_ID_TAG;
/// The tag that carries the email's project id on every message.
pub use plunk_domain::feedback::PROJECT_ID_TAG;

/// Sends through SES v2.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// Wraps a client; `configuration_set` is used for emails that name none.
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        Self {
            client,
            configuration_set,
        }
    }

    /// A client from the environment (region, credentials), optionally at another endpoint
    /// (e.g. moto for tests).
    pub async fn from_env(endpoint: Option<&str>, configuration_set: Option<String>) -> Self {
        Self::new(client_from_env(endpoint).await, configuration_set)
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// An SES v2 client from the environment, optionally at another endpoint.
pub async fn client_from_env(endpoint: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

#[async_trait]
impl Mailer for SesMailer {
    /// Returns the SES message id.
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let built = mime::build(email);
        let raw = RawMessage::builder()
            .data(Blob::new(built.bytes))
            .build()
            .map_err(|e| MailError::Permanent(format!("cannot build the SES request: {e}")))?;
        let tag = |name: &str, value: uuid::Uuid| {
            MessageTag::builder()
                .name(name)
                .value(value.hyphenated().to_string())
                .build()
                .map_err(|e| MailError::Permanent(format!("cannot build the SES request: {e}")))
        };
        let tags = vec![
            tag(EMAIL_ID_TAG, email.email_id)?,
            tag(PROJECT_ID_TAG, email.project_id)?,
        ];
        let configuration_set = email
            .configuration_set
            .clone()
            .or_else(|| self.configuration_set.clone());
        let output = self
            .client
            .send_email()
            .from_email_address(&email.from.email)
            .destination(Destination::builder().to_addresses(&email.to.email).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_email_tags(Some(tags))
            .set_configuration_set_name(configuration_set)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e))?;
        let id = output.message_id().unwrap_or_default().to_string();
        tracing::debug!(email_id = %email.email_id, ses_message_id = %id, "message sent through SES");
        Ok(id)
    }

    /// `GetAccount` → `SendQuota.MaxSendRate`; `None` when the call fails (moto lacks it).
    async fn account_send_rate(&self) -> Option<f64> {
        match self.client.get_account().send().await {
            Ok(account) => account
                .send_quota()
                .map(|q| q.max_send_rate())
                .filter(|r| *r > 0.0),
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "SES GetAccount failed; send rate unknown");
                None
            }
        }
    }
}

/// Maps any SES v2 SDK error to the worker's error kinds.
pub(crate) fn classify_sdk_error<E>(e: &SdkError<E, HttpResponse>) -> MailError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(ctx) => {
            let err = ctx.err();
            let text = format!(
                "SES {}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            );
            classify(err.code(), Some(ctx.raw().status().as_u16()), text)
        }
        SdkError::ConstructionFailure(_) => {
            MailError::Permanent(format!("SES request: {}", DisplayErrorContext(e)))
        }
        _ => MailError::Transient(format!("SES: {}", DisplayErrorContext(e))),
    }
}

/// Throttling first, then the known permanent refusals, then by HTTP status.
fn classify(code: Option<&str>, status: Option<u16>, text: String) -> MailError {
    match code.unwrap_or_default() {
        "TooManyRequestsException"
        | "LimitExceededException"
        | "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded" => MailError::Throttled(text),
        "MessageRejected"
        | "MailFromDomainNotVerifiedException"
        | "AccountSuspendedException"
        | "SendingPausedException"
        | "BadRequestException"
        | "NotFoundException" => MailError::Permanent(text),
        _ => match status {
            Some(429) => MailError::Throttled(text),
            _ => MailError::Transient(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::classify;
    use crate::mailer::MailError;

    fn kind(code: Option<&str>, status: Option<u16>) -> &'static str {
        match classify(code, status, String::new()) {
            MailError::Throttled(_) => "throttled",
            MailError::Transient(_) => "transient",
            MailError::Permanent(_) => "permanent",
        }
    }

    #[test]
    fn throttling_codes_and_429_are_throttled() {
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "Throttling",
            "ThrottlingException",
        ] {
            assert_eq!(kind(Some(code), Some(400)), "throttled", "{code}");
        }
        assert_eq!(kind(Some("Whatever"), Some(429)), "throttled");
    }

    #[test]
    fn refusals_that_a_retry_cannot_fix_are_permanent() {
        for code in [
            "MessageRejected",
            "MailFromDomainNotVerifiedException",
            "AccountSuspendedException",
            "SendingPausedException",
            "BadRequestException",
            "NotFoundException",
        ] {
            assert_eq!(kind(Some(code), Some(400)), "permanent", "{code}");
        }
    }

    #[test]
    fn server_errors_and_unknown_errors_are_transient() {
        assert_eq!(kind(Some("InternalFailure"), Some(500)), "transient");
        assert_eq!(kind(None, Some(503)), "transient");
        assert_eq!(kind(None, None), "transient");
    }
}
