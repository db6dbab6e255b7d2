//! A contact's activity summary: what event and email conditions read instead of the history.

use super::EmailStep;
use crate::event::Event;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most event names one contact's summary keeps; past it the name seen longest ago is dropped
/// (an item stays far below the store's item limit whatever a project tracks).
pub const MAX_EVENT_NAMES: usize = 400;

/// What a contact did, reduced to what conditions ask: for each event name the latest
/// occurrence, and for each email step the latest time one of its emails reached it (Unix
/// milliseconds). Kept up to date from the change feed, so evaluation never reads the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    #[serde(default)]
    pub events: BTreeMap<String, i64>,
    #[serde(default)]
    pub emails: BTreeMap<EmailStep, i64>,
}

impl Activity {
    /// Records an occurrence of `name` at `at_ms`; true when the summary changed.
    pub fn record_event(&mut self, name: &str, at_ms: i64) -> bool {
        match self.events.get(name) {
            Some(&latest) if latest >= at_ms => false,
            _ => {
                self.events.insert(name.to_owned(), at_ms);
                if self.events.len() > MAX_EVENT_NAMES {
                    let oldest = self
                        .events
                        .iter()
                        .min_by_key(|(_, at)| **at)
                        .map(|(n, _)| n.clone());
                    if let Some(oldest) = oldest {
                        self.events.remove(&oldest);
                    }
                }
                true
            }
        }
    }

    /// Folds one stored event in: its name's latest occurrence, and for the email lifecycle
    /// events the step's time (the event's own timestamp field, else when it was stored; a
    /// transient bounce is not a bounce). True when the summary changed.
    pub fn record(&mut self, event: &Event) -> bool {
        let stored_at = event.created_at.unix_millis();
        let mut changed = self.record_event(&event.name, stored_at);
        let step = match event.name.as_str() {
            "email.sent" => Some((EmailStep::Sent, "sentAt")),
            "email.delivery" => Some((EmailStep::Delivered, "deliveredAt")),
            "email.open" => Some((EmailStep::Opened, "openedAt")),
            "email.click" => Some((EmailStep::Clicked, "clickedAt")),
            "email.bounce" if event.data.get("transientBounce").is_none() => {
                Some((EmailStep::Bounced, "bouncedAt"))
            }
            "email.complaint" => Some((EmailStep::Complained, "complainedAt")),
            _ => None,
        };
        if let Some((step, field)) = step {
            let at = event
                .data
                .get(field)
                .and_then(|v| v.as_str())
                .and_then(Timestamp::parse_rfc3339)
                .map_or(stored_at, |t| t.unix_millis());
            changed |= self.record_email(step, at);
        }
        changed
    }

    /// Records that an email reached `step` at `at_ms`; true when the summary changed.
    pub fn record_email(&mut self, step: EmailStep, at_ms: i64) -> bool {
        match self.emails.get(&step) {
            Some(&latest) if latest >= at_ms => false,
            _ => {
                self.emails.insert(step, at_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventSource;
    use serde_json::json;

    fn event(name: &str, at_ms: i64, data: serde_json::Value) -> Event {
        Event {
            id: crate::id::new_id(),
            name: name.into(),
            contact_id: None,
            contact_email: None,
            email_id: None,
            data: data.as_object().cloned().unwrap_or_default(),
            source: EventSource::System,
            created_at: Timestamp::from_millis(at_ms).unwrap(),
        }
    }

    #[test]
    fn events_keep_their_latest_time_and_email_steps_their_own() {
        let mut activity = Activity::default();
        assert!(activity.record(&event("signed-up", 2_000, json!({}))));
        assert!(
            !activity.record(&event("signed-up", 1_000, json!({}))),
            "older changes nothing"
        );
        assert!(
            !activity.record(&event("signed-up", 2_000, json!({}))),
            "a redelivery changes nothing"
        );
        assert_eq!(activity.events["signed-up"], 2_000);
        let opened = "2026-01-01T00:00:00.000Z";
        activity.record(&event(
            "email.open",
            9_000_000_000_000,
            json!({ "openedAt": opened }),
        ));
        assert_eq!(
            activity.emails[&EmailStep::Opened],
            Timestamp::parse_rfc3339(opened).unwrap().unix_millis()
        );
        assert!(activity.events.contains_key("email.open"));
        activity.record(&event(
            "email.bounce",
            5_000,
            json!({ "transientBounce": true }),
        ));
        assert!(!activity.emails.contains_key(&EmailStep::Bounced));
        activity.record(&event(
            "email.bounce",
            6_000,
            json!({ "bounceType": "Permanent" }),
        ));
        assert_eq!(activity.emails[&EmailStep::Bounced], 6_000);
    }

    #[test]
    fn the_summary_keeps_a_bounded_number_of_names() {
        let mut activity = Activity::default();
        for i in 0..(MAX_EVENT_NAMES as i64 + 10) {
            activity.record_event(&format!("name-{i}"), 1_000 + i);
        }
        assert_eq!(activity.events.len(), MAX_EVENT_NAMES);
        assert!(
            !activity.events.contains_key("name-0"),
            "the oldest went first"
        );
        assert!(activity
            .events
            .contains_key(&format!("name-{}", MAX_EVENT_NAMES + 9)));
    }
}
