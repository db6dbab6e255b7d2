//! One email's failure affects only itself: emails accepted through
//! `/v1/send` by two projects go through the send consumer with a renderer and a provider that
//! panic on one project's mail; those emails end `FAILED` at once with the reason, and the other
//! project's mail is sent by the same consumer right after.

mod common;

use async_trait::async_trait;
use common::TestApp;
use http::{Method, StatusCode};
use plunk_domain::email_record::{EmailStatus, SendClass};
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Keeps what it sends; panics on subjects saying so.
#[derive(Default)]
struct Provider(Mutex<Vec<String>>);

#[async_trait]
impl Mailer for Provider {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        if email.subject.contains("provider panic") {
            panic!("index out of bounds in the provider client");
        }
        self.0.lock().unwrap().push(email.subject.clone());
        Ok(format!("msg-{}", email.email_id))
    }
}

/// The template engine, except that it panics on bodies saying so.
fn panicking_renderer(
    project: &plunk_domain::project::Project,
    contact: Option<&plunk_domain::contact::Contact>,
    to: &str,
    content: &plunk_domain::email_record::EmailContent,
    urls: Option<&plunk_domain::page_token::HostedUrls>,
) -> Result<plunk_worker::render::Rendered, plunk_worker::render::RenderFailure> {
    if content.body.contains("render panic") {
        panic!("attempt to divide with overflow");
    }
    plunk_worker::render::render_email(project, contact, to, content, urls)
}

async fn verified_domain(app: &TestApp, key: &str, domain: &str) {
    let created = app
        .raw(
            Method::POST,
            "/domains",
            Some(key),
            Some(json!({ "domain": domain }).to_string()),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    app.raw(
        Method::POST,
        &format!("/domains/{id}/verify"),
        Some(key),
        None,
        &[],
    )
    .await;
}

async fn send(app: &TestApp, key: &str, domain: &str, subject: &str, body: &str) -> Uuid {
    let res = app
        .raw(
            Method::POST,
            "/v1/send",
            Some(key),
            Some(
                json!({"to": "ada@example.org", "from": format!("hi@{domain}"), "subject": subject, "body": body})
                    .to_string(),
            ),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["emails"][0]["email"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_renderer_or_provider_fails_one_email_and_the_rest_flows() {
    let app = TestApp::new().await;
    let hostile_key = app.secret.clone();
    let (other, other_key) = app.other_project().await;
    verified_domain(&app, &hostile_key, "hostile.example").await;
    verified_domain(&app, &other_key, "other.example").await;
    let rendered_boom = send(&app, &hostile_key, "hostile.example", "one", "render panic").await;
    let provider_boom = send(&app, &hostile_key, "hostile.example", "provider panic", "x").await;
    let fine = send(
        &app,
        &other_key,
        "other.example",
        "for the other project",
        "<p>hi</p>",
    )
    .await;

    let provider = Arc::new(Provider::default());
    let mut worker = SendWorker::new(
        app.as_function("send-consumer"),
        provider.clone(),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    );
    worker.render = panicking_renderer;
    let queue = app.state.send_queues.of(SendClass::Transactional).clone();
    let messages = queue
        .receive(10, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(messages.len(), 3);
    for message in messages {
        let outcome = plunk_worker::consumer::handle(&worker, &message.body).await;
        assert_eq!(outcome, Outcome::Done, "every message ends at once");
    }

    let emails = app.store.emails();
    for (id, reason) in [
        (
            rendered_boom,
            "INTERNAL_ERROR: attempt to divide with overflow",
        ),
        (
            provider_boom,
            "INTERNAL_ERROR: index out of bounds in the provider client",
        ),
    ] {
        let record = emails.get(app.project.id, id).await.unwrap().unwrap();
        assert_eq!(record.status, EmailStatus::Failed);
        assert_eq!(record.error.as_deref(), Some(reason));
    }
    let sent = emails.get(other.id, fine).await.unwrap().unwrap();
    assert_eq!(sent.status, EmailStatus::Sent);
    assert_eq!(*provider.0.lock().unwrap(), ["for the other project"]);
    // The failures are visible as events too.
    let failed = app
        .call(Method::GET, "/events?name=email.failed", None)
        .await;
    assert_eq!(
        failed.data()["items"].as_array().unwrap().len(),
        2,
        "{}",
        failed.body
    );
}
