//! Parses every sample SQS body in `tests/events/ses/` (SNS-wrapped, raw, EventBridge).

mod common;

use common::{SAMPLE_EMAIL_ID, SAMPLE_MESSAGE_ID, SAMPLE_PROJECT_ID};
use plunk_domain::feedback::ses::{self, Ignored, Parsed};
use plunk_domain::feedback::{BounceType, FeedbackKind, ProviderEvent};
use std::path::PathBuf;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/events/ses")
}

fn parse_file(name: &str) -> Parsed {
    let body =
        std::fs::read_to_string(samples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    ses::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn event_of(name: &str) -> ProviderEvent {
    match parse_file(name) {
        Parsed::Event(e) => e,
        other => panic!("{name}: expected an event, got {other:?}"),
    }
}

/// (file stem without envelope prefix, expected kind, expected event timestamp).
fn expected() -> Vec<(&'static str, FeedbackKind, &'static str)> {
    vec![
        ("send", FeedbackKind::Send, "2026-03-01T09:30:00.702Z"),
        (
            "delivery",
            FeedbackKind::Delivery,
            "2026-03-01T09:30:02.114Z",
        ),
        (
            "bounce",
            FeedbackKind::Bounce {
                bounce_type: BounceType::Permanent,
                sub_type: "General".into(),
            },
            "2026-03-01T09:30:03.050Z",
        ),
        (
            "bounce-transient",
            FeedbackKind::Bounce {
                bounce_type: BounceType::Transient,
                sub_type: "MailboxFull".into(),
            },
            "2026-03-01T12:30:04.210Z",
        ),
        (
            "complaint",
            FeedbackKind::Complaint {
                feedback_type: Some("abuse".into()),
            },
            "2026-03-01T10:02:44.000Z",
        ),
        ("open", FeedbackKind::Open, "2026-03-01T09:41:17.530Z"),
        (
            "click",
            FeedbackKind::Click {
                link: "https://acme.io/receipts/42?utm_source=email".into(),
            },
            "2026-03-01T09:41:25.008Z",
        ),
        (
            "reject",
            FeedbackKind::Reject {
                reason: "Bad content".into(),
            },
            "2026-03-01T09:30:00.702Z",
        ),
        (
            "rendering-failure",
            FeedbackKind::RenderingFailure {
                error_message: "Attribute 'firstName' is not present in the rendering data.".into(),
            },
            "2026-03-01T09:30:00.702Z",
        ),
        (
            "delivery-delay",
            FeedbackKind::DeliveryDelay {
                delay_type: "TransientCommunicationFailure".into(),
                expiration_time: plunk_domain::Timestamp::parse_rfc3339("2026-03-02T09:30:00.702Z"),
            },
            "2026-03-01T09:45:00.918Z",
        ),
    ]
}

fn assert_sample(name: &str, kind: &FeedbackKind, timestamp: &str) {
    let e = event_of(name);
    assert_eq!(&e.kind, kind, "{name}");
    assert_eq!(e.timestamp.to_string(), timestamp, "{name}");
    assert_eq!(e.message_id, SAMPLE_MESSAGE_ID, "{name}");
    assert_eq!(
        e.email_id.map(|u| u.to_string()).as_deref(),
        Some(SAMPLE_EMAIL_ID),
        "{name}"
    );
    assert_eq!(
        e.project_id.map(|u| u.to_string()).as_deref(),
        Some(SAMPLE_PROJECT_ID),
        "{name}"
    );
    assert_eq!(e.recipients, ["ada@example.org"], "{name}");
}

#[test]
fn every_sns_wrapped_event_type_parses_with_its_fields() {
    for (stem, kind, timestamp) in expected() {
        assert_sample(&format!("sns-{stem}.json"), &kind, timestamp);
    }
}

#[test]
fn eventbridge_wrapped_events_parse_like_their_sns_twins() {
    let mut seen = 0;
    for (stem, kind, timestamp) in expected() {
        let name = format!("eventbridge-{stem}.json");
        if !samples_dir().join(&name).exists() {
            continue;
        }
        seen += 1;
        assert_sample(&name, &kind, timestamp);
        assert_eq!(
            event_of(&name).dedupe_key(),
            event_of(&format!("sns-{stem}.json")).dedupe_key(),
            "{name}: the same SES event must dedupe across envelopes"
        );
    }
    assert!(seen >= 6, "only {seen} EventBridge samples");
}

#[test]
fn raw_message_delivery_bodies_are_the_ses_event_itself() {
    let (_, kind, timestamp) = &expected()[1];
    assert_sample("raw-delivery.json", kind, timestamp);
}

#[test]
fn identity_notifications_use_notification_type_and_carry_no_tags() {
    let e = event_of("sns-legacy-bounce.json");
    assert_eq!(
        e.kind,
        FeedbackKind::Bounce {
            bounce_type: BounceType::Permanent,
            sub_type: "General".into()
        }
    );
    assert_eq!(e.message_id, SAMPLE_MESSAGE_ID);
    assert_eq!(e.email_id, None);
    assert_eq!(e.project_id, None);
}

#[test]
fn subscription_handshakes_and_ses_subscription_events_are_ignored() {
    assert_eq!(
        parse_file("sns-subscription-confirmation.json"),
        Parsed::Ignored(Ignored::SnsMessage("SubscriptionConfirmation".into()))
    );
    assert_eq!(
        parse_file("sns-subscription.json"),
        Parsed::Ignored(Ignored::EventType("Subscription".into()))
    );
}

#[test]
fn every_sample_file_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(samples_dir()).expect("samples dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let body = std::fs::read_to_string(&path).expect("readable");
        assert!(
            ses::parse(&body).is_ok(),
            "{} does not parse",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 20, "only {count} samples");
}
