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

/// What a subscription change is attributed to: the data of its `contact.subscribed` /
/// `contact.unsubscribed` event (contacts.md §2: `{source, reason?, emailId?, campaignId?}`) and
/// the event's `emailId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub source: SubscriptionSource,
    /// Why, where the source has a reason (bounce and complaint types).
    pub reason: Option<String>,
    /// The email whose link or feedback caused the change; also set as the event's `emailId`.
    pub email_id: Option<Uuid>,
    /// The campaign of that email.
    pub campaign_id: Option<Uuid>,
}

impl SubscriptionChange {
    /// The event data: `source`, and `reason`, `emailId`, `campaignId` when known.
    pub fn event_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert(
            "source".into(),
            serde_json::to_value(self.source).unwrap_or(Value::Null),
        );
        if let Some(reason) = &self.reason {
            data.insert("reason".into(), Value::String(reason.clone()));
        }
        if let Some(id) = self.email_id {
            data.insert("emailId".into(), Value::String(id.to_string()));
        }
        if let Some(id) = self.campaign_id {
            data.insert("campaignId".into(), Value::String(id.to_string()));
        }
        data
    }
}

impl From<SubscriptionSource> for SubscriptionChange {
    fn from(source: SubscriptionSource) -> Self {
        Self {
            source,
            reason: None,
            email_id: None,
            campaign_id: None,
        }
    }
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
    fn subscription_event_data_names_only_what_is_known() {
        let plain = SubscriptionChange::from(SubscriptionSource::Api);
        assert_eq!(
            Value::Object(plain.event_data()),
            serde_json::json!({"source": "api"})
        );
        let email = Uuid::now_v7();
        let campaign = Uuid::now_v7();
        let full = SubscriptionChange {
            source: SubscriptionSource::OneClick,
            reason: None,
            email_id: Some(email),
            campaign_id: Some(campaign),
        };
        assert_eq!(
            Value::Object(full.event_data()),
            serde_json::json!({"source": "one_click", "emailId": email, "campaignId": campaign})
        );
    }
}
