//! The fold of distinct notifications into an email is order-independent: random notification
//! sets per email, applied in generation order and in shuffled orders, end in the same record
//! and move the campaign counters by the same totals.

mod common;

use common::{at, event, sent_email};
use plunk_domain::email_record::{EmailRecord, EmailStatus};
use plunk_domain::feedback::{apply, BounceType, CampaignCounter, FeedbackKind, ProviderEvent};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};

/// A starting record as the sender may leave it.
fn random_start(rng: &mut StdRng) -> EmailRecord {
    let mut email = sent_email();
    match rng.gen_range(0..6) {
        0 | 1 => {}
        2 => {
            email.status = EmailStatus::Sending;
            email.sent_at = None;
            email.message_id = None;
        }
        3 => {
            email.status = EmailStatus::Failed;
            email.error = Some("SEND_OUTCOME_UNKNOWN".into());
            email.failed_at = Some(at(900_000));
            email.sent_at = None;
        }
        4 => email.status = EmailStatus::Pending,
        _ => {
            email.status = EmailStatus::Suppressed;
            email.error = Some("HARD_BOUNCE".into());
        }
    }
    email.tracking = rng.gen_bool(0.8);
    email.test = rng.gen_bool(0.1);
    if rng.gen_bool(0.2) {
        email.campaign_id = None;
    }
    email
}

/// A notification; times are drawn from a small range so that ties happen.
fn random_event(rng: &mut StdRng) -> ProviderEvent {
    let t = rng.gen_range(0..30) * 1_000;
    let pick = |rng: &mut StdRng, options: &[&str]| -> String {
        options.choose(rng).copied().unwrap_or_default().to_owned()
    };
    let kind = match rng.gen_range(0..10) {
        0 => FeedbackKind::Send,
        1 => FeedbackKind::Delivery,
        2 => FeedbackKind::Open,
        3 => FeedbackKind::Click {
            link: pick(rng, &["https://a.io/1", "https://a.io/2"]),
        },
        4 => FeedbackKind::Bounce {
            bounce_type: *[
                BounceType::Permanent,
                BounceType::Transient,
                BounceType::Undetermined,
            ]
            .choose(rng)
            .expect("non-empty"),
            sub_type: pick(rng, &["General", "MailboxFull", "NoEmail", ""]),
        },
        5 => FeedbackKind::Complaint {
            feedback_type: rng.gen_bool(0.5).then(|| "abuse".to_owned()),
        },
        6 => FeedbackKind::Reject {
            reason: pick(rng, &["Bad content", "Virus"]),
        },
        7 => FeedbackKind::RenderingFailure {
            error_message: pick(rng, &["missing x", "missing y"]),
        },
        8 => FeedbackKind::DeliveryDelay {
            delay_type: pick(rng, &["InternalFailure", "MailboxFull"]),
            expiration_time: Some(at(86_400_000)),
        },
        _ => FeedbackKind::Open,
    };
    event(t, kind)
}

/// Applies `events` in order; returns the record and the summed counter changes.
fn fold(
    start: &EmailRecord,
    events: &[ProviderEvent],
) -> (EmailRecord, BTreeMap<CampaignCounter, i64>, usize) {
    let mut record = start.clone();
    let mut totals = BTreeMap::new();
    let mut contact_effects = 0;
    for e in events {
        let out = apply(&record, e);
        for change in out.counters {
            *totals.entry(change.counter).or_insert(0) += change.delta;
        }
        contact_effects += usize::from(out.contact.is_some());
        record = out.record;
    }
    totals.retain(|_, v| *v != 0);
    (record, totals, contact_effects)
}

#[test]
fn shuffled_distinct_notifications_end_in_the_in_order_state() {
    let mut rng = StdRng::seed_from_u64(0x5e5_feed);
    for case in 0..3_000 {
        let start = random_start(&mut rng);
        let count = rng.gen_range(0..14);
        let mut seen = HashSet::new();
        // Duplicates are removed by dedupe key before apply, as the consumer does.
        let events: Vec<ProviderEvent> = (0..count)
            .map(|_| random_event(&mut rng))
            .filter(|e| seen.insert(e.dedupe_key()))
            .collect();
        let expected = fold(&start, &events);
        for _ in 0..6 {
            let mut shuffled = events.clone();
            shuffled.shuffle(&mut rng);
            let got = fold(&start, &shuffled);
            assert_eq!(
                got.0, expected.0,
                "case {case}: record differs\nstart {start:?}\nin order {events:#?}\nshuffled {shuffled:#?}"
            );
            assert_eq!(got.1, expected.1, "case {case}: counter totals differ");
            assert_eq!(got.2, expected.2, "case {case}: contact effects differ");
        }
    }
}

#[test]
fn send_and_reject_end_failed_in_either_order() {
    let send = event(0, FeedbackKind::Send);
    let reject = event(
        0,
        FeedbackKind::Reject {
            reason: "Virus".into(),
        },
    );
    let mut sending = sent_email();
    sending.status = EmailStatus::Sending;
    sending.sent_at = None;
    for start in [sent_email(), sending] {
        let a = fold(&start, &[send.clone(), reject.clone()]);
        let b = fold(&start, &[reject.clone(), send.clone()]);
        assert_eq!(a.0.status, EmailStatus::Failed);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
    }
}

#[test]
fn the_latest_hard_bounce_is_shown_whatever_the_order() {
    let early = event(
        1_000,
        FeedbackKind::Bounce {
            bounce_type: BounceType::Undetermined,
            sub_type: "General".into(),
        },
    );
    let late = event(
        5_000,
        FeedbackKind::Bounce {
            bounce_type: BounceType::Permanent,
            sub_type: "NoEmail".into(),
        },
    );
    let a = fold(&sent_email(), &[early.clone(), late.clone()]).0;
    let b = fold(&sent_email(), &[late, early]).0;
    assert_eq!(a, b);
    assert_eq!(a.bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(a.bounced_at, Some(at(5_000)));
}
