//! The mailer port: hands a finished message to a provider and reports its message id, with typed
//! errors so the send worker knows whether to retry.

pub mod emitting;
pub mod mime;
pub mod outbox;
pub mod ses;
pub mod smtp;

use async_trait::async_trait;
use uuid::Uuid;

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: String,
}

/// Whether a part is a regular attachment or an inline image referenced by `cid:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Attachment,
    Inline,
}

/// One attachment, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub disposition: Disposition,
    /// Required for inline parts; without angle brackets.
    pub content_id: Option<String>,
    pub content: Vec<u8>,
}

/// A rendered message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The platform's email id; carried to the provider as a tag so feedback finds the record.
    pub email_id: Uuid,
    /// The email's project; carried as a second tag, since the record's key needs it.
    pub project_id: Uuid,
    pub from: Mailbox,
    pub to: Mailbox,
    pub reply_to: Option<String>,
    /// Already rendered, CR/LF replaced, at most 998 characters.
    pub subject: String,
    pub html: String,
    /// Plain-text alternative derived from `html`.
    pub text: String,
    /// Custom headers, in order, already validated (names printable ASCII, values without CR/LF).
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
    /// Provider configuration set (tracking on or off), when the provider has such a thing.
    pub configuration_set: Option<String>,
}

/// Why a send failed, as the worker must treat it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The provider is throttling: retry later with back-off (it counts as an attempt, spec
    /// events-and-emails.md §4).
    #[error("throttled: {0}")]
    Throttled(String),
    /// A temporary failure: retry with back-off.
    #[error("transient: {0}")]
    Transient(String),
    /// The provider refused the message for good (e.g. unverified sender, invalid address).
    #[error("rejected: {0}")]
    Permanent(String),
}

/// A delivery channel.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends the message; returns the provider's message id.
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError>;
    /// The account's maximum sends per second, where the provider knows it.
    async fn account_send_rate(&self) -> Option<f64> {
        None
    }
}
