//! Folds one provider event into an email record (spec feedback-and-unsubscribe.md §2) and says
//! what else must happen: the system events to record, the contact to unsubscribe and
//! suppress, the campaign counters to move.
//!
//! The fold is order-independent: for a set of distinct events, every arrival order ends in the
//! same record. That is why each field merges with a commutative rule rather than "last write
//! wins":
//! - status: the highest precedence wins; Reject and Rendering Failure prove the message was not
//!   delivered, so they lower `SENT` (or below) to `FAILED`, and a Send never lifts an email
//!   whose `error` carries such a proof (`REJECTED: …` / `RENDER_FAILED: …`) — so Send-then-Reject
//!   and Reject-then-Send both end `FAILED`;
//! - first-occurrence times (`sentAt`, `deliveredAt`, `openedAt`, `clickedAt`, `complainedAt`,
//!   `delayedAt`): the earliest;
//! - the last bounce: a hard bounce outranks transient ones; among hard bounces the latest
//!   (`bouncedAt`) wins; transient bounces carry no stored time, so among them the choice is
//!   by type and subtype, which is arbitrary but the same in every order;
//! - the proof of failure: the latest (`failedAt`, `error`);
//! - `opens`, `clicks`: counted; `updatedAt`: the latest event time seen (the caller may stamp
//!   its own clock instead).
//!
//! Emitted events may differ with the order (`isFirstOpen`), the record does not; campaign
//! counter changes are derived from the record before and after, so their sums do not either.

use super::event::{BounceType, FeedbackKind, ProviderEvent};
use crate::email_record::{event_data, EmailRecord, EmailStatus};
use crate::event::SubscriptionSource;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Error prefix of a message the provider accepted and then refused (Reject).
pub const REJECTED_PREFIX: &str = "REJECTED: ";
/// Error prefix of a message that could not be rendered.
pub const RENDER_FAILED_PREFIX: &str = "RENDER_FAILED: ";

/// A system event to record (events-and-emails.md §2), with `emailId`, contact and project
/// taken from the record by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemEvent {
    pub name: &'static str,
    /// The base data of email events plus the extras of this event.
    pub data: Map<String, Value>,
}

/// Why an address is on the suppression list (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SuppressionReason {
    HardBounce,
    Complaint,
    Manual,
}

impl SuppressionReason {
    /// Every reason, for query validation.
    pub const ALL: [SuppressionReason; 3] = [Self::HardBounce, Self::Complaint, Self::Manual];

    /// Parses the API spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "HARD_BOUNCE",
            Self::Complaint => "COMPLAINT",
            Self::Manual => "MANUAL",
        }
    }
}

/// What happens to the email's contact and address: unsubscribe the contact (if it exists and
/// is subscribed; `contact.unsubscribed` with `source`) and suppress the address (`reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactEffect {
    pub source: SubscriptionSource,
    pub reason: SuppressionReason,
}

/// A campaign counter that moves with its emails' states (campaigns.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CampaignCounter {
    Pending,
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
    Suppressed,
    Failed,
}

impl CampaignCounter {
    /// Every counter that moves with an email's state.
    pub const ALL: [CampaignCounter; 9] = [
        Self::Pending,
        Self::Sent,
        Self::Delivered,
        Self::Opened,
        Self::Clicked,
        Self::Bounced,
        Self::Complained,
        Self::Suppressed,
        Self::Failed,
    ];

    /// The stats member it is shown as.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pendingCount",
            Self::Sent => "sentCount",
            Self::Delivered => "deliveredCount",
            Self::Opened => "openedCount",
            Self::Clicked => "clickedCount",
            Self::Bounced => "bouncedCount",
            Self::Complained => "complainedCount",
            Self::Suppressed => "suppressedCount",
            Self::Failed => "failedCount",
        }
    }
}

/// One counter change: +1, or −1 when an email leaves `PENDING`/`SENDING` or `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterChange {
    pub counter: CampaignCounter,
    pub delta: i64,
}

/// Everything one provider event causes.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackOutcome {
    /// The updated record (equal to the input when the event changes nothing).
    pub record: EmailRecord,
    /// Events to record, in order.
    pub events: Vec<SystemEvent>,
    /// Unsubscribe and suppress, for hard bounces and complaints.
    pub contact: Option<ContactEffect>,
    /// Changes to the counters of the email's campaign; empty for non-campaign and test emails.
    pub counters: Vec<CounterChange>,
}

/// Applies `event` to `email` (spec §2). The caller has matched the event to this email and
/// removed duplicates (same [`ProviderEvent::dedupe_key`]).
pub fn apply(email: &EmailRecord, event: &ProviderEvent) -> FeedbackOutcome {
    let at = event.timestamp;
    // Untracked emails never produce email.open / email.click (spec §6).
    if matches!(event.kind, FeedbackKind::Open | FeedbackKind::Click { .. }) && !email.tracking {
        return FeedbackOutcome {
            record: email.clone(),
            events: Vec::new(),
            contact: None,
            counters: Vec::new(),
        };
    }
    let mut r = email.clone();
    if r.message_id.is_none() {
        r.message_id = Some(event.message_id.clone());
    }
    let mut emitted: Vec<(&'static str, Value)> = Vec::new();
    let mut contact = None;
    match &event.kind {
        FeedbackKind::Send => {
            // Sets sentAt if unset; a set one only moves to an earlier provider time (the
            // earliest-wins rule that keeps the fold order-independent).
            let newly_sent = r.sent_at.is_none();
            r.sent_at = earliest(r.sent_at, at);
            if !proves_unsent(&r) {
                raise(&mut r, EmailStatus::Sent);
            }
            // A sentAt already set means the sender recorded the send and emitted email.sent.
            if newly_sent {
                emitted.push(("email.sent", json!({ "sentAt": r.sent_at })));
            }
        }
        FeedbackKind::Delivery => {
            r.delivered_at = earliest(r.delivered_at, at);
            raise(&mut r, EmailStatus::Delivered);
            emitted.push(("email.delivery", json!({ "deliveredAt": at })));
        }
        FeedbackKind::Open => {
            let first = r.opened_at.is_none();
            r.opened_at = earliest(r.opened_at, at);
            r.opens = r.opens.saturating_add(1);
            raise(&mut r, EmailStatus::Opened);
            emitted.push((
                "email.open",
                json!({ "openedAt": at, "opens": r.opens, "isFirstOpen": first }),
            ));
        }
        FeedbackKind::Click { link } => {
            let first = r.clicked_at.is_none();
            r.clicked_at = earliest(r.clicked_at, at);
            r.clicks = r.clicks.saturating_add(1);
            raise(&mut r, EmailStatus::Clicked);
            emitted.push((
                "email.click",
                json!({ "link": link, "clickedAt": at, "clicks": r.clicks, "isFirstClick": first }),
            ));
        }
        FeedbackKind::Bounce {
            bounce_type,
            sub_type,
        } if bounce_type.is_hard() => {
            keep_hard_bounce(&mut r, *bounce_type, sub_type, at);
            raise(&mut r, EmailStatus::Bounced);
            emitted.push((
                "email.bounce",
                json!({
                    "bounceType": bounce_type.as_str(),
                    "bounceSubType": sub_type,
                    "bouncedAt": at,
                }),
            ));
            contact = Some(ContactEffect {
                source: SubscriptionSource::Bounce,
                reason: SuppressionReason::HardBounce,
            });
        }
        FeedbackKind::Bounce {
            bounce_type,
            sub_type,
        } => {
            keep_transient_bounce(&mut r, *bounce_type, sub_type);
            emitted.push((
                "email.bounce",
                json!({
                    "bounceType": bounce_type.as_str(),
                    "bounceSubType": sub_type,
                    "transientBounce": true,
                }),
            ));
        }
        FeedbackKind::Complaint { feedback_type } => {
            r.complained_at = earliest(r.complained_at, at);
            raise(&mut r, EmailStatus::Complained);
            emitted.push((
                "email.complaint",
                json!({ "complainedAt": at, "feedbackType": feedback_type }),
            ));
            contact = Some(ContactEffect {
                source: SubscriptionSource::Complaint,
                reason: SuppressionReason::Complaint,
            });
        }
        FeedbackKind::Reject { reason } => {
            emitted.push(("email.reject", json!({ "reason": reason })));
            prove_unsent(&mut r, format!("{REJECTED_PREFIX}{reason}"), at);
        }
        FeedbackKind::DeliveryDelay {
            delay_type,
            expiration_time,
        } => {
            r.delayed_at = earliest(r.delayed_at, at);
            emitted.push((
                "email.deliverydelay",
                json!({ "delayType": delay_type, "expirationTime": expiration_time }),
            ));
        }
        FeedbackKind::RenderingFailure { error_message } => {
            emitted.push((
                "email.renderingfailure",
                json!({ "errorMessage": error_message }),
            ));
            prove_unsent(&mut r, format!("{RENDER_FAILED_PREFIX}{error_message}"), at);
        }
    }
    // Each transition to FAILED (or to another reason while FAILED) emits email.failed.
    if r.status == EmailStatus::Failed
        && (email.status != EmailStatus::Failed || email.error != r.error)
    {
        emitted.push((
            "email.failed",
            json!({ "error": r.error, "attempts": r.attempts }),
        ));
    }
    r.updated_at = r.updated_at.max(at);
    let events = emitted
        .into_iter()
        .map(|(name, extra)| SystemEvent {
            name,
            data: event_data(&r, extra),
        })
        .collect();
    FeedbackOutcome {
        counters: campaign_counter_changes(email, &r),
        record: r,
        events,
        contact,
    }
}

fn earliest(current: Option<Timestamp>, at: Timestamp) -> Option<Timestamp> {
    Some(current.map_or(at, |c| c.min(at)))
}

/// Whether the record's `error` proves the provider did not deliver the message.
fn proves_unsent(r: &EmailRecord) -> bool {
    r.error
        .as_deref()
        .is_some_and(|e| e.starts_with(REJECTED_PREFIX) || e.starts_with(RENDER_FAILED_PREFIX))
}

/// Moves to `to` if its precedence is at least the current one. Leaving `FAILED` clears an
/// error that feedback has disproved (e.g. `SEND_OUTCOME_UNKNOWN`), never a proof of failure.
fn raise(r: &mut EmailRecord, to: EmailStatus) {
    if to.precedence() < r.status.precedence() {
        return;
    }
    if r.status == EmailStatus::Failed && to != EmailStatus::Failed && !proves_unsent(r) {
        r.error = None;
    }
    r.status = to;
}

/// Records a Reject / Rendering Failure: keeps the latest proof as `error` and `failedAt`, and
/// moves an email not beyond `SENT` to `FAILED`. `SUPPRESSED` is never touched.
fn prove_unsent(r: &mut EmailRecord, error: String, at: Timestamp) {
    if r.status == EmailStatus::Suppressed {
        return;
    }
    let replace = match (r.error.as_deref(), r.failed_at) {
        (Some(current), Some(failed_at)) if proves_unsent(r) => {
            (at, error.as_str()) > (failed_at, current)
        }
        _ => true,
    };
    if replace {
        r.error = Some(error);
        r.failed_at = Some(at);
    }
    if r.status.precedence() <= EmailStatus::Sent.precedence() {
        r.status = EmailStatus::Failed;
    }
}

fn bounce_key(r: &EmailRecord) -> (&str, &str) {
    (
        r.bounce_type.as_deref().unwrap_or_default(),
        r.bounce_sub_type.as_deref().unwrap_or_default(),
    )
}

fn set_bounce(r: &mut EmailRecord, bounce_type: BounceType, sub_type: &str) {
    r.bounce_type = Some(bounce_type.as_str().to_owned());
    r.bounce_sub_type = (!sub_type.is_empty()).then(|| sub_type.to_owned());
}

/// The latest hard bounce is the one shown (`bouncedAt`, type, subtype).
fn keep_hard_bounce(r: &mut EmailRecord, bounce_type: BounceType, sub_type: &str, at: Timestamp) {
    let replace = match r.bounced_at {
        None => true,
        Some(bounced_at) => {
            (at, bounce_type.as_str(), sub_type) > (bounced_at, bounce_key(r).0, bounce_key(r).1)
        }
    };
    if replace {
        r.bounced_at = Some(at);
        set_bounce(r, bounce_type, sub_type);
    }
}

/// A transient bounce is shown only while there is no hard one (`bouncedAt` unset).
fn keep_transient_bounce(r: &mut EmailRecord, bounce_type: BounceType, sub_type: &str) {
    if r.bounced_at.is_some() {
        return;
    }
    if r.bounce_type.is_none() || (bounce_type.as_str(), sub_type) > bounce_key(r) {
        set_bounce(r, bounce_type, sub_type);
    }
}

/// Counter changes between two states of a campaign email: each counter counts an email at
/// most once (campaigns.md §5), so it moves when its condition starts (or stops) holding. Empty
/// for other emails and for test sends.
pub fn campaign_counter_changes(before: &EmailRecord, after: &EmailRecord) -> Vec<CounterChange> {
    if before.campaign_id.is_none() || before.test {
        return Vec::new();
    }
    CampaignCounter::ALL
        .into_iter()
        .filter_map(|counter| {
            let (was, is) = (counts(counter, before), counts(counter, after));
            (was != is).then_some(CounterChange {
                counter,
                delta: if is { 1 } else { -1 },
            })
        })
        .collect()
}

/// Whether `counter` counts `r` (campaigns.md §5).
fn counts(counter: CampaignCounter, r: &EmailRecord) -> bool {
    match counter {
        CampaignCounter::Pending => {
            matches!(r.status, EmailStatus::Pending | EmailStatus::Sending)
        }
        CampaignCounter::Sent => r.sent_at.is_some(),
        CampaignCounter::Delivered => r.delivered_at.is_some(),
        CampaignCounter::Opened => r.opened_at.is_some(),
        CampaignCounter::Clicked => r.clicked_at.is_some(),
        CampaignCounter::Bounced => r.bounced_at.is_some(),
        CampaignCounter::Complained => r.complained_at.is_some(),
        CampaignCounter::Suppressed => r.status == EmailStatus::Suppressed,
        CampaignCounter::Failed => r.status == EmailStatus::Failed,
    }
}
