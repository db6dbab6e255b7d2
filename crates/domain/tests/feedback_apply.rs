//! The effects table of feedback-and-unsubscribe.md §2, row by row.

mod common;

use common::{at, event, sent_email};
use plunk_domain::email_record::{EmailRecord, EmailStatus};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::feedback::{
    apply, BounceType, CampaignCounter, ContactEffect, CounterChange, FeedbackKind,
    FeedbackOutcome, SuppressionReason,
};
use serde_json::{json, Value};

fn names(outcome: &FeedbackOutcome) -> Vec<&str> {
    outcome.events.iter().map(|e| e.name).collect()
}

fn data(outcome: &FeedbackOutcome, index: usize, key: &str) -> Value {
    outcome.events[index]
        .data
        .get(key)
        .cloned()
        .unwrap_or(Value::Null)
}

fn counters(outcome: &FeedbackOutcome) -> Vec<(CampaignCounter, i64)> {
    outcome
        .counters
        .iter()
        .map(|CounterChange { counter, delta }| (*counter, *delta))
        .collect()
}

fn bounce(bounce_type: BounceType, sub_type: &str) -> FeedbackKind {
    FeedbackKind::Bounce {
        bounce_type,
        sub_type: sub_type.into(),
    }
}

fn reject() -> FeedbackKind {
    FeedbackKind::Reject {
        reason: "Bad content".into(),
    }
}

#[test]
fn delivery_marks_the_email_delivered_with_the_base_event_data() {
    let out = apply(&sent_email(), &event(1_400, FeedbackKind::Delivery));
    assert_eq!(out.record.status, EmailStatus::Delivered);
    assert_eq!(out.record.delivered_at, Some(at(1_400)));
    assert_eq!(out.record.updated_at, at(1_400));
    assert_eq!(names(&out), ["email.delivery"]);
    assert_eq!(data(&out, 0, "deliveredAt"), json!(at(1_400)));
    assert_eq!(data(&out, 0, "emailId"), json!(out.record.id));
    assert_eq!(data(&out, 0, "messageId"), json!(out.record.message_id));
    assert_eq!(data(&out, 0, "subject"), json!("Your receipt"));
    assert_eq!(data(&out, 0, "sourceType"), json!("CAMPAIGN"));
    assert_eq!(counters(&out), [(CampaignCounter::Delivered, 1)]);
    assert_eq!(out.contact, None);
}

#[test]
fn a_late_delivery_keeps_opened_but_records_delivered_at() {
    let opened = apply(&sent_email(), &event(9_000, FeedbackKind::Open)).record;
    let out = apply(&opened, &event(1_400, FeedbackKind::Delivery));
    assert_eq!(out.record.status, EmailStatus::Opened);
    assert_eq!(out.record.delivered_at, Some(at(1_400)));
    assert_eq!(out.record.updated_at, at(9_000));
    assert_eq!(names(&out), ["email.delivery"]);
}

#[test]
fn every_open_counts_but_opened_at_is_the_first_and_the_counter_moves_once() {
    let first = apply(&sent_email(), &event(9_000, FeedbackKind::Open));
    assert_eq!(data(&first, 0, "isFirstOpen"), json!(true));
    assert_eq!(data(&first, 0, "opens"), json!(1));
    assert_eq!(counters(&first), [(CampaignCounter::Opened, 1)]);

    let earlier = apply(&first.record, &event(5_000, FeedbackKind::Open));
    assert_eq!(earlier.record.opens, 2);
    assert_eq!(earlier.record.opened_at, Some(at(5_000)));
    assert_eq!(data(&earlier, 0, "isFirstOpen"), json!(false));
    assert_eq!(data(&earlier, 0, "openedAt"), json!(at(5_000)));
    assert!(earlier.counters.is_empty());
}

#[test]
fn a_click_carries_its_link_and_marks_the_email_clicked() {
    let link = FeedbackKind::Click {
        link: "https://acme.io/x".into(),
    };
    let out = apply(&sent_email(), &event(12_000, link));
    assert_eq!(out.record.status, EmailStatus::Clicked);
    assert_eq!(
        (out.record.clicks, out.record.clicked_at),
        (1, Some(at(12_000)))
    );
    assert_eq!(data(&out, 0, "link"), json!("https://acme.io/x"));
    assert_eq!(data(&out, 0, "clicks"), json!(1));
    assert_eq!(data(&out, 0, "isFirstClick"), json!(true));
    assert_eq!(counters(&out), [(CampaignCounter::Clicked, 1)]);
}

#[test]
fn opens_and_clicks_of_untracked_emails_change_nothing() {
    let mut email = sent_email();
    email.tracking = false;
    let out = apply(&email, &event(9_000, FeedbackKind::Open));
    assert_eq!(out.record, email);
    assert!(out.events.is_empty() && out.counters.is_empty());
}

#[test]
fn hard_bounces_bounce_the_email_unsubscribe_and_suppress() {
    for bounce_type in [BounceType::Permanent, BounceType::Undetermined] {
        let out = apply(&sent_email(), &event(3_000, bounce(bounce_type, "General")));
        assert_eq!(out.record.status, EmailStatus::Bounced);
        assert_eq!(out.record.bounced_at, Some(at(3_000)));
        assert_eq!(
            out.record.bounce_type.as_deref(),
            Some(bounce_type.as_str())
        );
        assert_eq!(out.record.bounce_sub_type.as_deref(), Some("General"));
        assert_eq!(names(&out), ["email.bounce"]);
        assert_eq!(data(&out, 0, "bounceType"), json!(bounce_type.as_str()));
        assert_eq!(data(&out, 0, "bouncedAt"), json!(at(3_000)));
        assert_eq!(
            out.contact,
            Some(ContactEffect {
                source: SubscriptionSource::Bounce,
                reason: SuppressionReason::HardBounce
            })
        );
        assert_eq!(counters(&out), [(CampaignCounter::Bounced, 1)]);
    }
}

#[test]
fn transient_bounces_record_the_type_only() {
    let out = apply(
        &sent_email(),
        &event(3_000, bounce(BounceType::Transient, "MailboxFull")),
    );
    assert_eq!(out.record.status, EmailStatus::Sent);
    assert_eq!(out.record.bounced_at, None);
    assert_eq!(out.record.bounce_type.as_deref(), Some("Transient"));
    assert_eq!(out.record.bounce_sub_type.as_deref(), Some("MailboxFull"));
    assert_eq!(names(&out), ["email.bounce"]);
    assert_eq!(data(&out, 0, "transientBounce"), json!(true));
    assert_eq!(out.contact, None);
    assert!(out.counters.is_empty());
}

#[test]
fn a_transient_bounce_never_hides_a_hard_one() {
    let hard = apply(
        &sent_email(),
        &event(3_000, bounce(BounceType::Permanent, "General")),
    );
    let out = apply(
        &hard.record,
        &event(8_000, bounce(BounceType::Transient, "MailboxFull")),
    );
    assert_eq!(out.record.bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(out.record.status, EmailStatus::Bounced);
}

#[test]
fn complaints_mark_the_email_unsubscribe_and_suppress() {
    let kind = FeedbackKind::Complaint {
        feedback_type: Some("abuse".into()),
    };
    let out = apply(&sent_email(), &event(60_000, kind));
    assert_eq!(out.record.status, EmailStatus::Complained);
    assert_eq!(out.record.complained_at, Some(at(60_000)));
    assert_eq!(data(&out, 0, "feedbackType"), json!("abuse"));
    assert_eq!(data(&out, 0, "complainedAt"), json!(at(60_000)));
    assert_eq!(
        out.contact,
        Some(ContactEffect {
            source: SubscriptionSource::Complaint,
            reason: SuppressionReason::Complaint
        })
    );
    assert_eq!(counters(&out), [(CampaignCounter::Complained, 1)]);
}

#[test]
fn a_reject_fails_a_sent_email_with_reject_and_failed_events() {
    let out = apply(&sent_email(), &event(0, reject()));
    assert_eq!(out.record.status, EmailStatus::Failed);
    assert_eq!(out.record.error.as_deref(), Some("REJECTED: Bad content"));
    assert_eq!(out.record.failed_at, Some(at(0)));
    assert_eq!(names(&out), ["email.reject", "email.failed"]);
    assert_eq!(data(&out, 0, "reason"), json!("Bad content"));
    assert_eq!(data(&out, 1, "error"), json!("REJECTED: Bad content"));
    assert_eq!(data(&out, 1, "attempts"), json!(1));
    assert_eq!(counters(&out), [(CampaignCounter::Failed, 1)]);
}

#[test]
fn a_rendering_failure_fails_a_sent_email() {
    let kind = FeedbackKind::RenderingFailure {
        error_message: "Attribute 'x' is missing".into(),
    };
    let out = apply(&sent_email(), &event(0, kind));
    assert_eq!(out.record.status, EmailStatus::Failed);
    assert_eq!(
        out.record.error.as_deref(),
        Some("RENDER_FAILED: Attribute 'x' is missing")
    );
    assert_eq!(names(&out), ["email.renderingfailure", "email.failed"]);
    assert_eq!(
        data(&out, 0, "errorMessage"),
        json!("Attribute 'x' is missing")
    );
}

#[test]
fn a_reject_does_not_lower_a_delivered_email() {
    let delivered = apply(&sent_email(), &event(1_400, FeedbackKind::Delivery)).record;
    let out = apply(&delivered, &event(0, reject()));
    assert_eq!(out.record.status, EmailStatus::Delivered);
    assert_eq!(names(&out), ["email.reject"]);
    assert!(out.counters.is_empty());
}

#[test]
fn a_send_after_a_reject_leaves_the_email_failed() {
    let rejected = apply(&sent_email(), &event(0, reject())).record;
    let out = apply(&rejected, &event(0, FeedbackKind::Send));
    assert_eq!(out.record.status, EmailStatus::Failed);
    assert!(
        out.events.is_empty(),
        "the sender already emitted email.sent"
    );
}

#[test]
fn a_send_the_sender_did_not_record_sets_sent_at_and_emits_email_sent() {
    let mut email = sent_email();
    email.status = EmailStatus::Sending;
    email.sent_at = None;
    email.message_id = None;
    let out = apply(&email, &event(0, FeedbackKind::Send));
    assert_eq!(out.record.status, EmailStatus::Sent);
    assert_eq!(out.record.sent_at, Some(at(0)));
    assert_eq!(
        out.record.message_id.as_deref(),
        Some(common::SAMPLE_MESSAGE_ID)
    );
    assert_eq!(names(&out), ["email.sent"]);
    assert_eq!(data(&out, 0, "sentAt"), json!(at(0)));
    assert_eq!(
        counters(&out),
        [(CampaignCounter::Pending, -1), (CampaignCounter::Sent, 1)]
    );
}

#[test]
fn a_send_the_sender_recorded_changes_nothing_visible() {
    let out = apply(&sent_email(), &event(0, FeedbackKind::Send));
    assert_eq!(out.record, sent_email());
    assert!(out.events.is_empty() && out.counters.is_empty());
}

#[test]
fn feedback_proving_a_send_moves_a_failed_email_and_its_counters() {
    let mut email = sent_email();
    email.status = EmailStatus::Failed;
    email.error = Some("SEND_OUTCOME_UNKNOWN".into());
    email.failed_at = Some(at(900_000));
    email.sent_at = None;
    let out = apply(&email, &event(1_400, FeedbackKind::Delivery));
    assert_eq!(out.record.status, EmailStatus::Delivered);
    assert_eq!(out.record.error, None);
    assert_eq!(
        counters(&out),
        [
            (CampaignCounter::Delivered, 1),
            (CampaignCounter::Failed, -1)
        ]
    );
}

#[test]
fn a_delivery_delay_records_delayed_at_only() {
    let kind = FeedbackKind::DeliveryDelay {
        delay_type: "TransientCommunicationFailure".into(),
        expiration_time: Some(at(86_400_000)),
    };
    let out = apply(&sent_email(), &event(60_000, kind));
    assert_eq!(out.record.status, EmailStatus::Sent);
    assert_eq!(out.record.delayed_at, Some(at(60_000)));
    assert_eq!(names(&out), ["email.deliverydelay"]);
    assert_eq!(
        data(&out, 0, "delayType"),
        json!("TransientCommunicationFailure")
    );
    assert_eq!(data(&out, 0, "expirationTime"), json!(at(86_400_000)));
}

#[test]
fn suppressed_emails_keep_their_status() {
    let mut email: EmailRecord = sent_email();
    email.status = EmailStatus::Suppressed;
    email.error = Some("HARD_BOUNCE".into());
    for kind in [FeedbackKind::Delivery, reject(), FeedbackKind::Send] {
        let out = apply(&email, &event(1_000, kind));
        assert_eq!(out.record.status, EmailStatus::Suppressed);
        assert_eq!(out.record.error.as_deref(), Some("HARD_BOUNCE"));
    }
}

#[test]
fn test_and_non_campaign_emails_move_no_counters() {
    let mut test = sent_email();
    test.test = true;
    let mut transactional = sent_email();
    transactional.campaign_id = None;
    for email in [test, transactional] {
        let out = apply(&email, &event(1_400, FeedbackKind::Delivery));
        assert_eq!(out.record.status, EmailStatus::Delivered);
        assert!(out.counters.is_empty());
        assert_eq!(names(&out), ["email.delivery"]);
    }
}
