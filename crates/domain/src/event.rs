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

/// The system event for a subscription change: `contact.subscribed` or `contact.unsubscribed`.
pub fn subscription_event_name(subscribed: bool) -> &'static str {
    if subscribed {
        "contact.subscribed"
    } else {
        "contact.unsubscribed"
    }
}
