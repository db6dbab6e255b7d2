//! The request body of a webhook delivery (webhooks.md §2) and the synthetic `webhook.test` event.

use plunk_domain::event::{Event, EventSource};
use plunk_domain::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The name of the synthetic event sent by `POST /webhooks/:id/test`.
pub const TEST_EVENT_NAME: &str = "webhook.test";

/// The JSON body POSTed to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody<'a> {
    /// The event name.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The event's `createdAt`.
    pub timestamp: Timestamp,
    /// Everything else.
    pub data: BodyData<'a>,
}

/// `data` of a [`WebhookBody`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyData<'a> {
    /// The event id (also the `webhook-id` header).
    pub event_id: Uuid,
    /// The event's contact, `null` when it has none.
    pub contact: Option<BodyContact<'a>>,
    /// The email the event belongs to.
    pub email_id: Option<Uuid>,
    /// The campaign, when the event data names one.
    pub campaign_id: Option<Uuid>,
    /// The event data, unchanged.
    pub data: &'a Map<String, Value>,
}

/// `data.contact` of a [`WebhookBody`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BodyContact<'a> {
    /// Contact id.
    pub id: Uuid,
    /// Contact email; `null` only if it is unknown.
    pub email: Option<&'a str>,
}

impl<'a> WebhookBody<'a> {
    /// The body for `event`. `contact_email` is the contact's current address when the caller
    /// looked it up; without it the address recorded on the event is used.
    pub fn new(event: &'a Event, contact_email: Option<&'a str>) -> Self {
        let contact = event.contact_id.map(|id| BodyContact {
            id,
            email: contact_email.or(event.contact_email.as_deref()),
        });
        let campaign_id = event
            .data
            .get("campaignId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        Self {
            kind: &event.name,
            timestamp: event.created_at,
            data: BodyData {
                event_id: event.id,
                contact,
                email_id: event.email_id,
                campaign_id,
                data: &event.data,
            },
        }
    }

    /// The serialised body: the exact bytes to sign and send.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, strings, UUIDs and a JSON map into a Vec cannot fail.
        serde_json::to_vec(self).expect("webhook body serialises")
    }
}

/// The bytes of the request body for `event`; see [`WebhookBody::new`].
pub fn event_body(event: &Event, contact_email: Option<&str>) -> Vec<u8> {
    WebhookBody::new(event, contact_email).to_bytes()
}

/// The synthetic `webhook.test` event: `data: {"message":"test"}`, no contact, no email. It is
/// never stored in `/events`; `id` becomes the `webhook-id` of its delivery.
pub fn test_event(id: Uuid, at: Timestamp) -> Event {
    let mut data = Map::new();
    data.insert("message".into(), Value::String("test".into()));
    Event {
        id,
        name: TEST_EVENT_NAME.to_owned(),
        contact_id: None,
        contact_email: None,
        email_id: None,
        data,
        source: EventSource::System,
        created_at: at,
    }
}

/// The request body of the synthetic `webhook.test` event.
pub fn test_body(id: Uuid, at: Timestamp) -> Vec<u8> {
    event_body(&test_event(id, at), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uuid(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    fn bounce() -> Event {
        let data = json!({
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedAt": "2026-03-01T09:30:03.050Z",
            "subject": "Your receipt"
        });
        Event {
            id: uuid("0193a1f3-2b00-7d11-8e22-3f4a5b6c7d8e"),
            name: "email.bounce".into(),
            contact_id: Some(uuid("0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23")),
            contact_email: Some("old@example.org".into()),
            email_id: Some(uuid("0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56")),
            data: data.as_object().unwrap().clone(),
            source: EventSource::System,
            created_at: Timestamp::parse_rfc3339("2026-03-01T09:30:03.050Z").unwrap(),
        }
    }

    #[test]
    fn the_body_matches_the_spec_example_byte_for_byte() {
        let body = event_body(&bounce(), Some("ada@example.org"));
        let expected = concat!(
            r#"{"type":"email.bounce","timestamp":"2026-03-01T09:30:03.050Z","#,
            r#""data":{"eventId":"0193a1f3-2b00-7d11-8e22-3f4a5b6c7d8e","#,
            r#""contact":{"id":"0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23","email":"ada@example.org"},"#,
            r#""emailId":"0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56","campaignId":null,"#,
            r#""data":{"bounceType":"Permanent","bounceSubType":"General","#,
            r#""bouncedAt":"2026-03-01T09:30:03.050Z","subject":"Your receipt"}}}"#
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn the_email_recorded_on_the_event_is_used_when_none_is_given() {
        let event = bounce();
        let body: Value = serde_json::from_slice(&event_body(&event, None)).unwrap();
        assert_eq!(body["data"]["contact"]["email"], "old@example.org");
    }

    #[test]
    fn events_without_contact_email_or_campaign_give_nulls() {
        let mut event = bounce();
        event.contact_id = None;
        event.email_id = None;
        let body: Value = serde_json::from_slice(&event_body(&event, None)).unwrap();
        assert_eq!(body["data"]["contact"], Value::Null);
        assert_eq!(body["data"]["emailId"], Value::Null);
        assert_eq!(body["data"]["campaignId"], Value::Null);
    }

    #[test]
    fn campaign_id_comes_from_the_data_only_when_it_is_a_uuid_string() {
        let id = "0193a2c0-4e5f-7061-8b72-c3d4e5f60718";
        for (value, expected) in [
            (json!(id), json!(id)),
            (json!(id.to_uppercase()), json!(id)),
            (json!("not-a-uuid"), Value::Null),
            (json!(42), Value::Null),
            (json!({"id": id}), Value::Null),
        ] {
            let mut event = bounce();
            event.data.insert("campaignId".into(), value.clone());
            let body: Value = serde_json::from_slice(&event_body(&event, None)).unwrap();
            assert_eq!(body["data"]["campaignId"], expected, "{value}");
            // The event data itself is passed through unchanged.
            assert_eq!(body["data"]["data"]["campaignId"], value);
        }
    }

    #[test]
    fn the_test_event_has_a_fixed_shape() {
        let id = uuid("0193a3d0-5f60-7172-a283-d4e5f6071829");
        let at = Timestamp::parse_rfc3339("2026-03-01T09:30:00Z").unwrap();
        let body = String::from_utf8(test_body(id, at)).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"type":"webhook.test","timestamp":"2026-03-01T09:30:00.000Z","#,
                r#""data":{"eventId":"0193a3d0-5f60-7172-a283-d4e5f6071829","contact":null,"#,
                r#""emailId":null,"campaignId":null,"data":{"message":"test"}}}"#
            )
        );
        assert!(plunk_domain::event::is_reserved_event_name(TEST_EVENT_NAME));
    }
}
