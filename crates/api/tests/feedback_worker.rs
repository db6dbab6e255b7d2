//! The feedback worker (`plunk_worker::feedback`) on both backends: SES-shaped notification
//! bodies in, email records, events, suppressions, contacts and campaign counters out, with
//! sends driven through `/v1/send` and read back through `/emails` and `/suppressions`.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use plunk_domain::email_record::{EmailRecord, EmailStatus};
use plunk_domain::feedback::notification::{eventbridge_body, Notification};
use plunk_domain::feedback::{BounceType, FeedbackKind, SuppressionReason};
use plunk_domain::Timestamp;
use plunk_store::repo::feedback::{AppliedFeedback, PendingContactEffect};
use plunk_worker::feedback::{Discard, FeedbackWorker, Handled};
use serde_json::{json, Value};
use uuid::Uuid;

async fn verified_domain(app: &TestApp) {
    let res = app
        .call(
            Method::POST,
            "/domains",
            Some(json!({ "domain": "acme.io" })),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let id = res.data()["id"].as_str().unwrap().to_owned();
    app.call(Method::POST, &format!("/domains/{id}/verify"), None)
        .await;
}

/// `POST /v1/send` to `to`; returns the email id and the send's status.
async fn send(app: &TestApp, to: &str) -> (Uuid, String) {
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": to, "subject": "Your receipt", "body": "<p>Thanks</p>", "from": "billing@acme.io"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let item = &res.data()["emails"][0];
    (
        item["email"].as_str().unwrap().parse().unwrap(),
        item["status"].as_str().unwrap().to_owned(),
    )
}

fn at(base: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_millis(base.unix_millis() + ms).unwrap()
}

/// Records `id` as the send worker does after the provider accepted it, at `sent_at`.
async fn mark_sent(app: &TestApp, id: Uuid, sent_at: Timestamp) -> EmailRecord {
    let emails = app.store.emails();
    let v = emails
        .get_versioned(app.project.id, id)
        .await
        .unwrap()
        .unwrap();
    let mut r = v.record.clone();
    r.status = EmailStatus::Sent;
    r.message_id = Some(format!("ses-{id}"));
    r.sent_at = Some(sent_at);
    r.attempts = 1;
    emails
        .save(app.project.id, &v.record, &r, v.version)
        .await
        .unwrap();
    r
}

/// A subscribed contact for `to`, then a send to it recorded as sent.
async fn sent_to_subscribed(app: &TestApp, to: &str, sent_at: Timestamp) -> EmailRecord {
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": to, "subscribed": true})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let (id, _) = send(app, to).await;
    mark_sent(app, id, sent_at).await
}

/// The EventBridge body of a notification about `r`.
fn body(
    app: &TestApp,
    r: &EmailRecord,
    message_id: &str,
    kind: FeedbackKind,
    when: Timestamp,
) -> String {
    eventbridge_body(&Notification {
        kind: &kind,
        message_id,
        email_id: r.id,
        project_id: app.project.id,
        from: &r.from,
        to: &r.to,
        subject: &r.subject,
        sent_at: r.sent_at.unwrap_or(when),
        at: when,
    })
}

fn worker(app: &TestApp) -> FeedbackWorker {
    FeedbackWorker {
        store: app.as_function("feedback-consumer"),
    }
}

async fn email(app: &TestApp, id: Uuid) -> Value {
    let res = app.call(Method::GET, &format!("/emails/{id}"), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data().clone()
}

/// Stored events named `name` (newest first).
async fn events(app: &TestApp, name: &str) -> Vec<plunk_domain::event::Event> {
    app.store
        .events()
        .list(app.project.id, Some(name), 100, None)
        .await
        .unwrap()
        .items
}

fn hard_bounce() -> FeedbackKind {
    FeedbackKind::Bounce {
        bounce_type: BounceType::Permanent,
        sub_type: "General".into(),
    }
}

/// A campaign email to `to`, stored `SENT` as the sender leaves it.
async fn campaign_email(
    app: &TestApp,
    to: &str,
    campaign: Uuid,
    sent_at: Timestamp,
) -> EmailRecord {
    let (id, _) = send(app, to).await;
    let v = app
        .store
        .emails()
        .get_versioned(app.project.id, id)
        .await
        .unwrap()
        .unwrap();
    let mut r = v.record.clone();
    r.campaign_id = Some(campaign);
    app.store
        .emails()
        .save(app.project.id, &v.record, &r, v.version)
        .await
        .unwrap();
    mark_sent(app, id, sent_at).await
}

async fn campaign_counter(app: &TestApp, campaign: Uuid, name: &str) -> i64 {
    app.store
        .table()
        .get(&plunk_store::keys::campaign_counter(
            app.project.id,
            campaign,
            name,
        ))
        .await
        .unwrap()
        .and_then(|item| item.counter)
        .unwrap_or(0)
}

crate::on_both_backends! {
    async fn send_delivery_open_and_click_move_the_email_to_clicked(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let (id, _) = send(&app, "ada@example.org").await;
        let r = mark_sent(&app, id, at(t, 0)).await;
        let m = r.message_id.clone().unwrap();
        let w = worker(&app);
        // SES stamps the message a little before the sender records it.
        let mut provider = r.clone();
        provider.sent_at = Some(at(t, -5));

        for (ms, kind) in [
            (-5, FeedbackKind::Send),
            (2_000, FeedbackKind::Delivery),
            (60_000, FeedbackKind::Open),
            (61_000, FeedbackKind::Click { link: "https://acme.io/r/42".into() }),
        ] {
            let name = kind.provider_name();
            let handled = w.handle(&body(&app, &provider, &m, kind, at(t, ms))).await.unwrap();
            assert_eq!(handled, Handled::Applied { email_id: id }, "{name}");
        }

        let e = email(&app, id).await;
        assert_eq!(e["status"], "CLICKED");
        assert_eq!((e["opens"].as_u64(), e["clicks"].as_u64()), (Some(1), Some(1)));
        assert_eq!(e["sentAt"], json!(at(t, -5)), "the provider's earlier time wins");
        assert_eq!(e["deliveredAt"], json!(at(t, 2_000)));
        assert_eq!(e["openedAt"], json!(at(t, 60_000)));
        assert_eq!(e["clickedAt"], json!(at(t, 61_000)));
        assert!(events(&app, "email.sent").await.is_empty(), "the sender emitted email.sent, not feedback");
        assert_eq!(events(&app, "email.delivery").await.len(), 1);
        let open = &events(&app, "email.open").await[0];
        assert_eq!(open.email_id, Some(id));
        assert_eq!(open.data["isFirstOpen"], true);
        let click = &events(&app, "email.click").await[0];
        assert_eq!(click.data["link"], "https://acme.io/r/42");
        assert_eq!(click.data["emailId"], json!(id));
        assert_eq!(click.contact_email.as_deref(), Some("ada@example.org"));
    }

    async fn a_permanent_bounce_unsubscribes_and_suppresses_and_the_next_send_is_suppressed(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let r = sent_to_subscribed(&app, "ada@example.org", t).await;
        let m = r.message_id.clone().unwrap();
        let bounce = body(&app, &r, &m, hard_bounce(), at(t, 3_000));

        assert_eq!(worker(&app).handle(&bounce).await.unwrap(), Handled::Applied { email_id: r.id });
        // The same notification again (SQS redelivery) changes nothing.
        assert_eq!(worker(&app).handle(&bounce).await.unwrap(), Handled::Duplicate { email_id: r.id });

        let e = email(&app, r.id).await;
        assert_eq!(e["status"], "BOUNCED");
        assert_eq!(e["bouncedAt"], json!(at(t, 3_000)));
        let contact = app.call(Method::GET, &format!("/contacts/{}", r.contact_id.unwrap()), None).await;
        assert_eq!(contact.data()["subscribed"], false);
        let unsubscribed = events(&app, "contact.unsubscribed").await;
        assert_eq!(unsubscribed.len(), 1, "one contact.unsubscribed");
        assert_eq!(unsubscribed[0].data["source"], "bounce");
        assert_eq!(unsubscribed[0].data["emailId"], json!(r.id));
        assert_eq!(unsubscribed[0].email_id, Some(r.id));
        assert_eq!(events(&app, "email.bounce").await.len(), 1);
        let listed = app.call(Method::GET, "/suppressions?email=ada@example.org", None).await;
        let s = &listed.data()["items"][0];
        assert_eq!(s["reason"], "HARD_BOUNCE");
        assert_eq!(s["emailId"], json!(r.id));

        let (_, status) = send(&app, "ada@example.org").await;
        assert_eq!(status, "SUPPRESSED");
    }

    async fn a_complaint_unsubscribes_and_suppresses_with_source_complaint(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let r = sent_to_subscribed(&app, "grace@example.org", t).await;
        let m = r.message_id.clone().unwrap();
        let complaint = FeedbackKind::Complaint { feedback_type: Some("abuse".into()) };

        let handled = worker(&app).handle(&body(&app, &r, &m, complaint, at(t, 90_000))).await.unwrap();

        assert_eq!(handled, Handled::Applied { email_id: r.id });
        let e = email(&app, r.id).await;
        assert_eq!(e["status"], "COMPLAINED");
        assert_eq!(e["complainedAt"], json!(at(t, 90_000)));
        let complained = events(&app, "email.complaint").await;
        assert_eq!(complained[0].data["feedbackType"], "abuse");
        let unsubscribed = events(&app, "contact.unsubscribed").await;
        assert_eq!(unsubscribed.len(), 1);
        assert_eq!(unsubscribed[0].data["source"], "complaint");
        let s = app.store.suppressions()
            .get(app.project.id, &plunk_domain::EmailAddress::parse("grace@example.org").unwrap())
            .await.unwrap().unwrap();
        assert_eq!((s.reason, s.email_id), (SuppressionReason::Complaint, Some(r.id)));
    }

    async fn a_complaint_about_an_email_without_a_contact_id_finds_the_contact_by_address(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let mut r = sent_to_subscribed(&app, "hedy@example.org", t).await;
        let contact = r.contact_id.take().expect("the send names its contact");
        let v = app.store.emails().get_versioned(app.project.id, r.id).await.unwrap().unwrap();
        app.store.emails().save(app.project.id, &v.record, &r, v.version).await.unwrap();
        let m = r.message_id.clone().unwrap();
        let complaint = FeedbackKind::Complaint { feedback_type: None };

        worker(&app).handle(&body(&app, &r, &m, complaint, at(t, 90_000))).await.unwrap();

        let c = app.call(Method::GET, &format!("/contacts/{contact}"), None).await;
        assert_eq!(c.data()["subscribed"], json!(false), "{}", c.body);
    }

    async fn a_duplicated_notification_changes_nothing_twice(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let (id, _) = send(&app, "ada@example.org").await;
        let r = mark_sent(&app, id, t).await;
        let m = r.message_id.clone().unwrap();
        let w = worker(&app);
        let open = body(&app, &r, &m, FeedbackKind::Open, at(t, 5_000));
        w.handle(&open).await.unwrap();
        let once = app.store.emails().get(app.project.id, id).await.unwrap();

        // The same SES event again, in a new EventBridge envelope (a new envelope id).
        let again = body(&app, &r, &m, FeedbackKind::Open, at(t, 5_000));
        assert_ne!(open, again);
        assert_eq!(w.handle(&again).await.unwrap(), Handled::Duplicate { email_id: id });
        assert_eq!(w.handle(&open).await.unwrap(), Handled::Duplicate { email_id: id });

        assert_eq!(app.store.emails().get(app.project.id, id).await.unwrap(), once);
        assert_eq!(email(&app, id).await["opens"], 1);
        assert_eq!(events(&app, "email.open").await.len(), 1);
        // A second, distinct open counts.
        w.handle(&body(&app, &r, &m, FeedbackKind::Open, at(t, 6_000))).await.unwrap();
        assert_eq!(email(&app, id).await["opens"], 2);
    }

    async fn notifications_arriving_out_of_order_end_in_the_in_order_state(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let (first, _) = send(&app, "ada@example.org").await;
        let (second, _) = send(&app, "grace@example.org").await;
        let mut records = Vec::new();
        for id in [first, second] {
            records.push(mark_sent(&app, id, t).await);
        }
        let kinds = |r: &EmailRecord| {
            let m = r.message_id.clone().unwrap();
            [
                (FeedbackKind::Send, 0),
                (FeedbackKind::Delivery, 1_000),
                (FeedbackKind::Open, 2_000),
                (FeedbackKind::Click { link: "https://acme.io".into() }, 3_000),
                (FeedbackKind::Bounce { bounce_type: BounceType::Transient, sub_type: "MailboxFull".into() }, 500),
            ]
            .into_iter()
            .map(|(k, ms)| body(&app, r, &m, k, at(t, ms)))
            .collect::<Vec<_>>()
        };
        let w = worker(&app);
        for b in kinds(&records[0]) {
            w.handle(&b).await.unwrap();
        }
        for b in kinds(&records[1]).into_iter().rev() {
            w.handle(&b).await.unwrap();
        }

        let (a, b) = (email(&app, first).await, email(&app, second).await);
        for field in ["status", "sentAt", "deliveredAt", "openedAt", "clickedAt", "opens", "clicks", "bounceType", "bounceSubType"] {
            assert_eq!(a[field], b[field], "{field}");
        }
        assert_eq!(b["status"], "CLICKED");
        assert_eq!(b["bounceType"], "Transient");
    }

    async fn feedback_for_unknown_emails_or_without_our_tags_is_discarded(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let (id, _) = send(&app, "ada@example.org").await;
        let r = mark_sent(&app, id, t).await;
        let w = worker(&app);
        let mut unknown = r.clone();
        unknown.id = Uuid::now_v7();

        let handled = w.handle(&body(&app, &unknown, "ses-x", FeedbackKind::Delivery, t)).await.unwrap();
        assert_eq!(handled, Handled::Discarded(Discard::UnknownEmail));
        let other_message = w.handle(&body(&app, &r, "ses-other", FeedbackKind::Delivery, t)).await.unwrap();
        assert_eq!(other_message, Handled::Discarded(Discard::MessageIdMismatch));
        let legacy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/events/ses/sns-legacy-bounce.json")).unwrap();
        assert_eq!(w.handle(&legacy).await.unwrap(), Handled::Discarded(Discard::MissingTags));
        assert_eq!(w.handle("{oops").await.unwrap(), Handled::Discarded(Discard::Unreadable));
        let handshake = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/events/ses/sns-subscription-confirmation.json")).unwrap();
        assert_eq!(w.handle(&handshake).await.unwrap(), Handled::Ignored);

        assert_eq!(email(&app, id).await["status"], "SENT");
        assert!(events(&app, "email.delivery").await.is_empty());
    }

    async fn a_send_event_reconciles_an_email_left_sending(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let (id, _) = send(&app, "ada@example.org").await;
        // The sender claimed it, called the provider and died before recording SENT.
        let v = app.store.emails().get_versioned(app.project.id, id).await.unwrap().unwrap();
        let mut r = v.record.clone();
        r.status = EmailStatus::Sending;
        r.sending_at = Some(t);
        app.store.emails().save(app.project.id, &v.record, &r, v.version).await.unwrap();
        let send_event = body(&app, &r, "ses-reconciled", FeedbackKind::Send, at(t, 40));

        assert_eq!(worker(&app).handle(&send_event).await.unwrap(), Handled::Applied { email_id: id });
        // Again: the record already says all the event does.
        assert_eq!(worker(&app).handle(&send_event).await.unwrap(), Handled::Unchanged { email_id: id });

        let e = email(&app, id).await;
        assert_eq!(e["status"], "SENT");
        assert_eq!(e["sentAt"], json!(at(t, 40)));
        assert_eq!(e["messageId"], "ses-reconciled");
        let sent = events(&app, "email.sent").await;
        assert_eq!(sent.len(), 1, "email.sent once");
        assert_eq!(sent[0].data["sentAt"], json!(at(t, 40)));
    }

    async fn campaign_counters_move_once_per_email(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let campaign = Uuid::now_v7();
        let a = campaign_email(&app, "ada@example.org", campaign, t).await;
        let b = campaign_email(&app, "grace@example.org", campaign, t).await;
        let w = worker(&app);
        for r in [&a, &b] {
            let m = r.message_id.clone().unwrap();
            w.handle(&body(&app, r, &m, FeedbackKind::Delivery, at(t, 1_000))).await.unwrap();
            w.handle(&body(&app, r, &m, FeedbackKind::Delivery, at(t, 1_000))).await.unwrap();
        }
        let m = a.message_id.clone().unwrap();
        for ms in [2_000, 3_000] {
            w.handle(&body(&app, &a, &m, FeedbackKind::Open, at(t, ms))).await.unwrap();
        }
        let mb = b.message_id.clone().unwrap();
        w.handle(&body(&app, &b, &mb, hard_bounce(), at(t, 4_000))).await.unwrap();

        assert_eq!(campaign_counter(&app, campaign, "deliveredCount").await, 2);
        assert_eq!(campaign_counter(&app, campaign, "openedCount").await, 1);
        assert_eq!(campaign_counter(&app, campaign, "bouncedCount").await, 1);
        // Counted once each, when the sender's write set sentAt; feedback does not count again.
        assert_eq!(campaign_counter(&app, campaign, "sentCount").await, 2);
        let other = campaign_counter(&app, Uuid::now_v7(), "deliveredCount").await;
        assert_eq!(other, 0);
    }

    async fn a_contact_effect_left_pending_is_finished_by_the_redelivered_message(app: TestApp) {
        verified_domain(&app).await;
        let t = Timestamp::now();
        let r = sent_to_subscribed(&app, "ada@example.org", t).await;
        let m = r.message_id.clone().unwrap();
        let bounce = body(&app, &r, &m, hard_bounce(), at(t, 3_000));
        // The transaction committed, then the process died before the contact effect.
        let event = match plunk_domain::feedback::ses::parse(&bounce).unwrap() {
            plunk_domain::feedback::ses::Parsed::Event(e) => e,
            other => panic!("{other:?}"),
        };
        let v = app.store.emails().get_versioned(app.project.id, r.id).await.unwrap().unwrap();
        let outcome = plunk_domain::feedback::apply(&v.record, &event);
        let key = event.dedupe_key();
        let pending = PendingContactEffect {
            contact_id: r.contact_id,
            address: r.to.clone(),
            source: plunk_domain::event::SubscriptionSource::Bounce,
            reason: SuppressionReason::HardBounce,
            email_id: r.id,
            campaign_id: None,
        };
        app.store.feedback().commit(app.project.id, AppliedFeedback {
            dedupe_key: &key,
            record: &outcome.record,
            version: v.version,
            events: &[],
            counters: &[],
            pending: Some(pending),
        }).await.unwrap();
        assert!(app.call(Method::GET, "/suppressions", None).await.data()["items"].as_array().unwrap().is_empty());

        assert_eq!(worker(&app).handle(&bounce).await.unwrap(), Handled::Duplicate { email_id: r.id });

        assert_eq!(app.call(Method::GET, "/suppressions", None).await.data()["items"][0]["reason"], "HARD_BOUNCE");
        assert_eq!(events(&app, "contact.unsubscribed").await.len(), 1);
        let marker = app.store.feedback().marker(app.project.id, &key).await.unwrap().unwrap();
        assert_eq!(marker.pending, None, "settled");
        worker(&app).handle(&bounce).await.unwrap();
        assert_eq!(events(&app, "contact.unsubscribed").await.len(), 1);
    }
}
