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
    /// The event data: `source`, and `reason`, `emailId`, `campaignId` when known. A hosted
    /// page's change always carries `emailId` and `campaignId`, `null` when its link named none
    /// (feedback-and-unsubscribe.md §4: `{source, emailId, campaignId}`).
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
        let from_a_page = matches!(
            self.source,
            SubscriptionSource::OneClick
                | SubscriptionSource::UnsubscribePage
                | SubscriptionSource::SubscribePage
                | SubscriptionSource::ManagePage
        );
        if from_a_page {
            data.entry("emailId").or_insert(Value::Null);
            data.entry("campaignId").or_insert(Value::Null);
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

/// Longest event name (public-api.md §2.1).
pub const MAX_EVENT_NAME_CHARS: usize = 255;

/// Whether `name` is reserved for the platform's own events and so cannot be tracked or deleted
/// (public-api.md §2.1; compared case-insensitively after trimming).
pub fn is_reserved_event_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    name.starts_with("email.")
        || name == "contact.subscribed"
        || name == "contact.unsubscribed"
        || name.starts_with("segment.")
        || name.starts_with("webhook.")
}

/// Checks an event name given by a caller (already trimmed): 1–255 characters, no control
/// characters and no `/` (names appear in URL paths). Returns the problem, if any.
pub fn event_name_problem(name: &str) -> Option<&'static str> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_EVENT_NAME_CHARS {
        Some("Event names must be 1-255 characters")
    } else if name.chars().any(|c| c.is_control() || c == '/') {
        Some("Event names must not contain control characters or '/'")
    } else {
        None
    }
}

/// The data an event stores for a caller's `data` object: every member, with one-shot wrappers
/// (`{value, persistent}`) unwrapped to their value; `null` and `""` kept as given
/// (public-api.md §2.2 step 4).
pub fn event_data_from_input(input: &Map<String, Value>) -> Map<String, Value> {
    input
        .iter()
        .map(|(k, v)| (k.clone(), crate::contact::unwrap_one_shot(v).0.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reserved_names_are_recognised_case_insensitively_after_trimming() {
        for name in [
            "email.open",
            " Email.Sent ",
            "contact.subscribed",
            "CONTACT.UNSUBSCRIBED",
            "segment.vip.entry",
            "webhook.test",
        ] {
            assert!(is_reserved_event_name(name), "{name}");
        }
        for name in [
            "signed_up",
            "contact.created",
            "emailed",
            "segments",
            "web.hook",
        ] {
            assert!(!is_reserved_event_name(name), "{name}");
        }
    }

    #[test]
    fn name_rules() {
        assert!(event_name_problem("signed_up").is_none());
        assert!(event_name_problem(&"x".repeat(255)).is_none());
        assert!(event_name_problem(&"x".repeat(256)).is_some());
        assert!(event_name_problem("").is_some());
        assert!(event_name_problem("a/b").is_some());
        assert!(event_name_problem("a\u{7}b").is_some());
    }

    #[test]
    fn event_data_unwraps_one_shot_values_and_keeps_nulls_and_empty_strings() {
        let input = json!({
            "lastOrder": "A-1001",
            "trackingUrl": {"value": "https://t.acme.io/1Z", "persistent": false},
            "nickname": null,
            "empty": "",
        });
        let data = event_data_from_input(input.as_object().unwrap());
        assert_eq!(
            Value::Object(data),
            json!({"lastOrder": "A-1001", "trackingUrl": "https://t.acme.io/1Z", "nickname": null, "empty": ""})
        );
    }

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
        let page = SubscriptionChange {
            email_id: Some(email),
            campaign_id: None,
            ..SubscriptionChange::from(SubscriptionSource::ManagePage)
        };
        assert_eq!(
            Value::Object(page.event_data()),
            serde_json::json!({"source": "manage_page", "emailId": email, "campaignId": null})
        );
    }
}
