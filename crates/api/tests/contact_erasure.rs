//! `DELETE /contacts/:id` (contacts.md): the contact goes at once, its events, email records and
//! unique-contact markers in the background within minutes, and nothing new names it. The real
//! send worker and the scheduler's erasure, held to their functions' table access.

mod common;

use async_trait::async_trait;
use common::TestApp;
use http::{Method, StatusCode};
use plunk_domain::email_record::{EmailStatus, SendClass};
use plunk_domain::event::{Event, EventSource};
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_store::keys;
use plunk_store::repo::contact_erasure::SECOND_PASS_AFTER_MS;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

struct Provider;

#[async_trait]
impl Mailer for Provider {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        Ok(format!("msg-{}", email.email_id))
    }
}

async fn verified_domain(app: &TestApp) {
    let created = app
        .call(Method::POST, "/domains", Some(json!({"domain": "acme.io"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    app.call(Method::POST, &format!("/domains/{id}/verify"), None)
        .await;
}

async fn send(app: &TestApp, to: &str, subject: &str) -> (Uuid, Uuid) {
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": to, "from": "hi@acme.io", "subject": subject, "body": "<p>hi</p>"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let email = &res.data()["emails"][0];
    (
        email["email"].as_str().unwrap().parse().unwrap(),
        email["contact"]["id"].as_str().unwrap().parse().unwrap(),
    )
}

/// Hands every queued transactional email to the real send worker.
async fn drain(app: &TestApp) {
    let worker = SendWorker::new(
        app.as_function("send-consumer"),
        Arc::new(Provider),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    );
    let queue = app.state.send_queues.of(SendClass::Transactional).clone();
    loop {
        let messages = queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if messages.is_empty() {
            return;
        }
        for message in messages {
            let outcome = plunk_worker::consumer::handle(&worker, &message.body).await;
            assert_eq!(outcome, Outcome::Done);
            queue.delete(&message.receipt).await.unwrap();
        }
    }
}

async fn events_of(app: &TestApp, contact: Uuid) -> Vec<serde_json::Value> {
    let res = app
        .call(Method::GET, &format!("/events?contactId={contact}"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["items"].as_array().unwrap().clone()
}

async fn marker(app: &TestApp, name: &str, contact: Uuid) -> bool {
    app.store
        .table()
        .get(&keys::event_contact_marker(app.project.id, name, contact))
        .await
        .unwrap()
        .is_some()
}

fn now_ms() -> i64 {
    plunk_domain::Timestamp::now().unix_millis()
}

on_both_backends! {
    async fn a_deleted_contacts_history_goes_within_minutes_and_nothing_new_names_it(app: TestApp) {
        verified_domain(&app).await;
        let (sent, ada) = send(&app, "ada@example.org", "sent").await;
        let (kept, grace) = send(&app, "grace@example.org", "kept").await;
        drain(&app).await;
        for email in ["ada@example.org", "grace@example.org"] {
            let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "signup", "email": email}))).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        }
        app.dispatch_events().await;
        assert!(marker(&app, "signup", ada).await);
        assert!(events_of(&app, ada).await.len() >= 2, "email.sent and signup");
        // Queued, not sent yet, when the contact goes.
        let (pending, _) = send(&app, "ada@example.org", "pending").await;

        let res = app.call(Method::DELETE, &format!("/contacts/{ada}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);

        // The worker meets the queued email: removed unsent, no email.failed naming the contact.
        drain(&app).await;
        assert_eq!(app.store.emails().get(app.project.id, pending).await.unwrap(), None);
        let failed = app.call(Method::GET, "/events?name=email.failed", None).await;
        assert_eq!(failed.data()["items"], json!([]), "{}", failed.body);

        // The scheduler's first pass.
        let erasure = app.as_function("scheduler");
        let erased = erasure.contact_erasure().work(now_ms(), 10_000).await.unwrap();
        assert!(erased.events >= 2 && erased.emails >= 1, "{erased:?}");
        let res = app.call(Method::GET, &format!("/emails/{sent}"), None).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.body);
        assert_eq!(events_of(&app, ada).await, Vec::<serde_json::Value>::new());
        assert!(!marker(&app, "signup", ada).await);
        // Another contact's history stays.
        let res = app.call(Method::GET, &format!("/emails/{kept}"), None).await;
        assert_eq!(res.data()["status"], "SENT");
        assert_eq!(events_of(&app, grace).await.len(), 2);
        assert!(marker(&app, "signup", grace).await);

        // Something in flight at the delete names the contact late (a provider notification, a
        // lagging counter): the second pass, when no claim can still be open, takes it too.
        let late = Event {
            id: plunk_domain::id::new_id(),
            name: "email.delivered".into(),
            contact_id: Some(ada),
            contact_email: Some("ada@example.org".into()),
            email_id: Some(sent),
            data: serde_json::Map::new(),
            source: EventSource::System,
            created_at: plunk_domain::Timestamp::now(),
        };
        app.store.events().record(app.project.id, &late).await.unwrap();
        app.store
            .table()
            .put(
                plunk_store::table::Item::new(keys::event_contact_marker(app.project.id, "signup", ada), json!({})),
                plunk_store::table::Condition::None,
            )
            .await
            .unwrap();
        assert!(erasure.contact_erasure().pending(app.project.id, ada).await.unwrap());
        let early = erasure.contact_erasure().work(now_ms(), 10_000).await.unwrap();
        assert_eq!(early.events, 0, "the second pass waits");
        let later = now_ms() + SECOND_PASS_AFTER_MS + 1_000;
        let erased = erasure.contact_erasure().work(later, 10_000).await.unwrap();
        assert_eq!(erased.events, 1);
        assert_eq!(events_of(&app, ada).await, Vec::<serde_json::Value>::new());
        assert!(!marker(&app, "signup", ada).await);
        assert!(!erasure.contact_erasure().pending(app.project.id, ada).await.unwrap(), "done");
        assert_eq!(app.store.emails().get(app.project.id, kept).await.unwrap().map(|r| r.status), Some(EmailStatus::Sent));
    }

    async fn erasures_of_two_projects_progress_side_by_side(app: TestApp) {
        // One project deletes a contact with a long history; another deletes one with a short
        // history afterwards: a tick with a small budget serves both.
        let (other, other_key) = app.other_project().await;
        let key = app.secret.clone();
        let big = contact_with_events(&app, app.project.id, &key, "big@example.org", 400).await;
        let small = contact_with_events(&app, other.id, &other_key, "small@example.org", 3).await;
        let res = app.call(Method::DELETE, &format!("/contacts/{big}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = app
            .raw(Method::DELETE, &format!("/contacts/{small}"), Some(&other_key), None, &[])
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let erasure = app.as_function("scheduler");
        erasure.contact_erasure().work(now_ms(), 150).await.unwrap();
        let left = |project, contact| {
            let store = app.store.clone();
            async move {
                store.events().for_contact(project, contact, None, 100, None).await.unwrap().items.len()
            }
        };
        assert_eq!(left(other.id, small).await, 0, "the small project was served in the first tick");
        assert!(left(app.project.id, big).await > 0, "the big one only had its share");
    }
}

/// A contact of `project` (created with `key`) with `n` events, stored directly as tracking would.
async fn contact_with_events(
    app: &TestApp,
    project: Uuid,
    key: &str,
    email: &str,
    n: usize,
) -> Uuid {
    let res = app
        .raw(
            Method::POST,
            "/contacts",
            Some(key),
            Some(json!({ "email": email }).to_string()),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let contact: Uuid = res.data()["id"].as_str().unwrap().parse().unwrap();
    for _ in 0..n {
        let event = Event {
            id: plunk_domain::id::new_id(),
            name: "viewed".into(),
            contact_id: Some(contact),
            contact_email: Some(email.into()),
            email_id: None,
            data: serde_json::Map::new(),
            source: EventSource::Api,
            created_at: plunk_domain::Timestamp::now(),
        };
        app.store.events().record(project, &event).await.unwrap();
    }
    contact
}
