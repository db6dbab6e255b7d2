//! What the function tests share: a fake Lambda Runtime API that runs the real binaries, the
//! event fixtures of `tests/events/`, and data stored through the store's own APIs.
//!
//! The fake plays the HTTP interface a function polls for events (as `sam local invoke` and
//! cargo-lambda do): it hands out queued events and collects what the binary posts back.

#![allow(dead_code)] // each test binary uses its own part

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::email_record::{EmailContent, EmailRecord, EmailStatus, SourceType};
use plunk_domain::project::{Project, Tracking};
use plunk_domain::sending_domain::{Domain, DomainStatus, MailFromStatus};
use plunk_domain::Timestamp;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use serde_json::Value;
use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

#[derive(Clone)]
struct Runtime {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    ready: Arc<Notify>,
    results: mpsc::UnboundedSender<(String, Value)>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    loop {
        let ready = rt.ready.notified();
        let event = rt.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            h.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from(deadline as u64),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (h, event.to_string());
        }
        ready.await;
    }
}

async fn respond(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = rt.results.send((id, value));
    "{}"
}

async fn error(State(rt): State<Runtime>, body: String) -> &'static str {
    let _ = rt.results.send(("error".into(), Value::String(body)));
    "{}"
}

/// A function binary running against a fake Runtime API.
pub struct Function {
    child: Child,
    runtime: Runtime,
    results: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Function {
    /// Starts `binary` on the embedded store in `data_dir`.
    pub async fn start(binary: &str, data_dir: &std::path::Path) -> Self {
        Self::start_with(binary, data_dir, &[]).await
    }

    /// Starts `binary` on the embedded store in `data_dir`, with more environment variables.
    /// The test's own `PLUNK_*` and `AWS_*` variables are not passed on.
    pub async fn start_with(
        binary: &str,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = Runtime {
            events: Arc::default(),
            ready: Arc::default(),
            results: tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars() {
            // The access record is kept: what the binaries touch counts toward the grants' use.
            if (name.starts_with("PLUNK_") || name.starts_with("AWS_"))
                && name != "PLUNK_ACCESS_RECORD"
            {
                command.env_remove(name);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "group")
            .env("PLUNK_STORE", "sqlite")
            .env("PLUNK_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        let child = command.spawn().expect("function binary starts");
        Self {
            child,
            runtime,
            results: rx,
        }
    }

    /// Sends one event and waits for the function's response.
    pub async fn invoke(&mut self, event: Value) -> Value {
        let id = uuid_like();
        self.runtime
            .events
            .lock()
            .unwrap()
            .push_back((id.clone(), event));
        self.runtime.ready.notify_waiters();
        let (got, value) = tokio::time::timeout(Duration::from_secs(30), self.results.recv())
            .await
            .expect("function answers within 30 s")
            .expect("runtime channel open");
        assert_eq!(got, id, "function reported an error: {value}");
        value
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The fixture `tests/events/<name>` with each `(placeholder, value)` replaced.
pub fn fixture(name: &str, replacements: &[(&str, &str)]) -> Value {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (placeholder, value) in replacements {
        text = text.replace(placeholder, value);
    }
    serde_json::from_str(&text).unwrap()
}

/// The embedded store the binaries open in `dir`.
pub fn store_in(dir: &std::path::Path) -> Store {
    Store::new(Arc::new(SqliteTable::open(&dir.join("plunk.db")).unwrap()))
}

/// A project and its secret key.
pub async fn project(store: &Store) -> (Project, String) {
    let (project, secret, _) = store
        .projects()
        .create("Lambda", 1000, Tracking::Enabled, "en")
        .await
        .unwrap();
    (project, secret.expose().to_owned())
}

/// The sending domain of the seeded emails.
pub const SENDER_DOMAIN: &str = "mail.example.com";

/// Registers [`SENDER_DOMAIN`] with `project` as verified (record and claim, as `/domains` does).
pub async fn verified_domain(store: &Store, project: Uuid) {
    verified_domain_named(store, project, SENDER_DOMAIN).await
}

/// Registers `name` with `project` as verified.
pub async fn verified_domain_named(store: &Store, project: Uuid, name: &str) {
    let now = Timestamp::now();
    let mut domain = Domain::new(
        Uuid::now_v7(),
        name.into(),
        format!("bounce.{name}"),
        vec!["token1".into(), "token2".into(), "token3".into()],
        "us-east-1".into(),
        now,
    );
    domain.record_check(DomainStatus::Verified, MailFromStatus::Success, now);
    store.domains().create(project, &domain).await.unwrap();
    let claim = store.domains().claim(name).await.unwrap().unwrap();
    assert!(claim.verified && claim.project_id == project);
}

/// Stores a `PENDING` transactional email to `to`, accepted at `accepted_at`, as `/v1/send`
/// does; returns its id.
pub async fn pending_email(store: &Store, project: Uuid, to: &str, accepted_at: Timestamp) -> Uuid {
    pending_email_from(store, project, to, SENDER_DOMAIN, accepted_at).await
}

/// Like [`pending_email`], sent from `hello@<domain>`.
pub async fn pending_email_from(
    store: &Store,
    project: Uuid,
    to: &str,
    domain: &str,
    accepted_at: Timestamp,
) -> Uuid {
    let id = Uuid::now_v7();
    let record = EmailRecord {
        id,
        contact_id: None,
        to: to.into(),
        to_name: None,
        from: format!("hello@{domain}"),
        from_name: "Example".into(),
        reply_to: None,
        subject: "Welcome, {{name}}".into(),
        source_type: SourceType::Transactional,
        template_id: None,
        campaign_id: None,
        workflow_id: None,
        workflow_execution_id: None,
        marketing: false,
        tracking: false,
        test: false,
        status: EmailStatus::Pending,
        error: None,
        attempts: 0,
        message_id: None,
        opens: 0,
        clicks: 0,
        bounce_type: None,
        bounce_sub_type: None,
        queued_at: Some(accepted_at),
        sending_at: None,
        sent_at: None,
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        bounced_at: None,
        complained_at: None,
        delayed_at: None,
        failed_at: None,
        suppressed_at: None,
        created_at: accepted_at,
        updated_at: accepted_at,
    };
    let mut one_shot = serde_json::Map::new();
    one_shot.insert("name".into(), "Ada".into());
    let content = EmailContent {
        subject: record.subject.clone(),
        body: "<p>Hello {{name}}, welcome aboard.</p>".into(),
        body_blob: None,
        headers: vec![],
        attachments: vec![],
        one_shot,
        template_type: None,
        event: Default::default(),
        campaign_content: None,
    };
    assert!(store
        .emails()
        .accept(project, &record, Some(&content))
        .await
        .unwrap());
    id
}
