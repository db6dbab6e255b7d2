//! Delivery feedback (spec feedback-and-unsubscribe.md §1–§2): provider notifications parsed
//! into [`ProviderEvent`]s ([`ses`]) and folded into an email record ([`apply()`]). Pure: the
//! caller reads the queue, deduplicates on [`ProviderEvent::dedupe_key`], loads the record and
//! stores what [`apply()`] returns.

pub mod apply;
pub mod event;
pub mod notification;
pub mod ses;

pub use apply::{
    apply, campaign_counter_changes, CampaignCounter, ContactEffect, CounterChange,
    FeedbackOutcome, SuppressionReason, SystemEvent,
};
pub use event::{BounceType, FeedbackKind, ProviderEvent};

/// The message tag that carries the platform's email id on every provider message, so
/// feedback finds its record even before the message id is stored.
pub const EMAIL_ID_TAG: &str = "email_id";

/// The message tag that carries the email's project id: the email record's key needs it.
pub const PROJECT_ID_TAG: &str = "project_id";
