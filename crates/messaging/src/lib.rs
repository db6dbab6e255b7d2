//! Ports and adapters for everything the platform sends or stores outside its table:
//!
//! - [`queue`]: work queues with visibility timeouts and dead-letter redrive (SQS, embedded).
//! - [`blob`]: large content by key (S3, a folder).
//! - [`mailer`]: delivering a finished message (SES v2, SMTP, an outbox folder); locally wrapped
//!   to report Send and Delivery onto the [`feedback_queue`].
//! - [`identity`]: sending domains at the provider (SES v2 identities, a local stand-in).
//!
//! Each port is a trait speaking the crate's own types and errors, never SDK types.

pub mod blob;
pub mod feedback_queue;
pub mod identity;
pub mod mailer;
pub mod memory;
pub mod queue;
pub mod send_queues;
