//! Events recorded against a project (spec events-and-emails.md §1).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventSource {
    /// `POST /v1/track`.
    Api,
    /// Emitted by the platform itself.
    System,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Uuid,
    pub name: String,
    pub contact_id: Option<Uuid>,
    pub contact_email: Option<String>,
    pub email_id: Option<Uuid>,
    pub data: Map<String, Value>,
    pub source: EventSource,
    pub created_at: Timestamp,
}

/// Which path changed a contact's subscription (contacts.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionSource {
    Api,
    Send,
    Track,
    UnsubscribePage,
    OneClick,
    ManagePage,
    SubscribePage,
    Bounce,
    Complaint,
    Workflow,
}

/// Whether `name` is reserved for system events and so may not be tracked through `/v1/track`
/// (public-api.md §2.1): compared case-insensitively after trimming, any name starting with
/// `email.`, `segment.` or `webhook.`, and exactly `contact.subscribed` / `contact.unsubscribed`.
pub fn is_reserved_event_name(name: &str) -> bool {
    let lower = name.trim().to_lowercase();
    const PREFIXES: [&str; 3] = ["email.", "segment.", "webhook."];
    const EXACT: [&str; 2] = ["contact.subscribed", "contact.unsubscribed"];
    PREFIXES.iter().any(|p| lower.starts_with(p)) || EXACT.contains(&lower.as_str())
}

/// The system event for a subscription change: `contact.subscribed` or `contact.unsubscribed`.
pub fn subscription_event_name(subscribed: bool) -> &'static str {
    if subscribed {
        "contact.subscribed"
    } else {
        "contact.unsubscribed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_reserved_whatever_their_case_and_padding() {
        for name in [
            "email.sent",
            "EMAIL.Bounce",
            "  email.anything  ",
            "email.",
            "contact.subscribed",
            "Contact.Unsubscribed",
            " contact.unsubscribed\t",
            "segment.entry",
            "SEGMENT.exit",
            "webhook.test",
            "Webhook.Anything",
        ] {
            assert!(is_reserved_event_name(name), "{name:?} should be reserved");
        }
    }

    #[test]
    fn custom_names_are_not_reserved() {
        for name in [
            "signed_up",
            "email",
            "emails.sent",
            "my.email.sent",
            "contact.created",
            "contact.subscribed.twice",
            "contact",
            "segment",
            "webhooks.test",
            "webhook",
            "",
        ] {
            assert!(
                !is_reserved_event_name(name),
                "{name:?} should not be reserved"
            );
        }
    }

    #[test]
    fn subscription_events_are_named_by_direction() {
        assert!(is_reserved_event_name(subscription_event_name(true)));
        assert!(is_reserved_event_name(subscription_event_name(false)));
    }
}
