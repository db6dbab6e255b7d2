//! Feeds the worker fixtures in `tests/events/` (SQS send batch, EventBridge tick) through the
//! real `send-consumer` and `scheduler` binaries on the embedded store, with the outbox mailer,
//! through a fake Lambda Runtime API (`common`).

mod common;

use common::Function;
use plunk_domain::email_record::EmailStatus;
use plunk_domain::Timestamp;
use plunk_messaging::queue::embedded::EmbeddedQueue;
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendJob;
use plunk_store::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// A data directory with a project that may send from a verified domain.
struct Arranged {
    dir: tempfile::TempDir,
    store: Store,
    project: Uuid,
    secret: String,
}

impl Arranged {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = common::store_in(dir.path());
        let (project, secret) = common::project(&store).await;
        common::verified_domain(&store, project.id).await;
        Self {
            dir,
            store,
            project: project.id,
            secret,
        }
    }

    async fn pending_email(&self, to: &str) -> Uuid {
        common::pending_email(&self.store, self.project, to, Timestamp::now()).await
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join("sent")
    }

    /// The `send-consumer` binary writing to the outbox, at a pace that never waits here.
    async fn send_consumer(&self) -> Function {
        let outbox = self.outbox();
        Function::start_with(
            env!("CARGO_BIN_EXE_send-consumer"),
            self.dir.path(),
            &[
                ("PLUNK_MAILER", "outbox"),
                ("PLUNK_OUTBOX_DIR", outbox.to_str().unwrap()),
                ("PLUNK_SEND_RATE", "1000"),
            ],
        )
        .await
    }

    /// The SQS fixture for emails `first` and `second` of this project.
    fn batch(&self, first: Uuid, second: Uuid) -> Value {
        common::fixture(
            "sqs-send-batch.json",
            &[
                ("__PROJECT_ID__", &self.project.to_string()),
                ("__EMAIL_ID_1__", &first.to_string()),
                ("__EMAIL_ID_2__", &second.to_string()),
            ],
        )
    }

    async fn status(&self, email: Uuid) -> EmailStatus {
        self.store
            .emails()
            .get(self.project, email)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}

/// The `.eml` files in `dir` of `email`.
fn sent_files(dir: &Path, email: Uuid) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let id = email.to_string();
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml") && name.contains(&id))
        .count()
}

fn failures(response: &Value) -> &Vec<Value> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("a partial batch response: {response}"))
}

#[tokio::test]
async fn the_send_consumer_sends_a_batch_and_reports_no_failures() {
    let arranged = Arranged::new().await;
    let first = arranged.pending_email("ada@example.org").await;
    let second = arranged.pending_email("grace@example.org").await;
    let mut consumer = arranged.send_consumer().await;

    let response = consumer.invoke(arranged.batch(first, second)).await;

    assert!(failures(&response).is_empty(), "{response}");
    for email in [first, second] {
        assert_eq!(sent_files(&arranged.outbox(), email), 1);
        assert_eq!(arranged.status(email).await, EmailStatus::Sent);
    }
    let message = plunk_messaging::mailer::outbox::read(&arranged.outbox(), first).unwrap();
    let subject = message
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("subject"))
        .map(|(_, value)| value.as_str());
    assert_eq!(
        subject,
        Some("Welcome, Ada"),
        "rendered with the one-shot data"
    );
}

#[tokio::test]
async fn a_redelivered_batch_sends_nothing_twice() {
    let arranged = Arranged::new().await;
    let first = arranged.pending_email("ada@example.org").await;
    let second = arranged.pending_email("grace@example.org").await;
    let mut consumer = arranged.send_consumer().await;
    consumer.invoke(arranged.batch(first, second)).await;
    let sent = arranged
        .store
        .emails()
        .get(arranged.project, first)
        .await
        .unwrap();

    let again = consumer.invoke(arranged.batch(first, second)).await;

    assert!(failures(&again).is_empty(), "{again}");
    assert_eq!(sent_files(&arranged.outbox(), first), 1);
    assert_eq!(sent_files(&arranged.outbox(), second), 1);
    let after = arranged
        .store
        .emails()
        .get(arranged.project, first)
        .await
        .unwrap();
    assert_eq!(after, sent, "the record is untouched by the duplicate");
}

#[tokio::test]
async fn a_job_delivered_twice_in_one_batch_sends_one_email() {
    let arranged = Arranged::new().await;
    let email = arranged.pending_email("ada@example.org").await;
    let mut consumer = arranged.send_consumer().await;
    // The same job twice, as an SQS standard queue may deliver it: two message ids.
    let event = arranged.batch(email, email);

    let response = consumer.invoke(event).await;

    // The copy that lost the claim comes back later (it is the email's only way back should the
    // winner fail); then it finds the email SENT and is done.
    assert!(failures(&response).len() <= 1, "{response}");
    assert_eq!(sent_files(&arranged.outbox(), email), 1);
    assert_eq!(arranged.status(email).await, EmailStatus::Sent);
    let again = consumer.invoke(arranged.batch(email, email)).await;
    assert!(failures(&again).is_empty(), "{again}");
    assert_eq!(sent_files(&arranged.outbox(), email), 1);
}

#[tokio::test]
async fn a_job_for_an_email_that_does_not_exist_is_done() {
    let arranged = Arranged::new().await;
    let email = arranged.pending_email("ada@example.org").await;
    let mut consumer = arranged.send_consumer().await;
    let missing = Uuid::now_v7();

    let response = consumer.invoke(arranged.batch(missing, email)).await;

    assert!(
        failures(&response).is_empty(),
        "a job with no email is deleted, not retried: {response}"
    );
    assert_eq!(sent_files(&arranged.outbox(), missing), 0);
    assert_eq!(sent_files(&arranged.outbox(), email), 1);
}

#[tokio::test]
async fn an_unreadable_job_is_dropped_not_retried() {
    let arranged = Arranged::new().await;
    let email = arranged.pending_email("ada@example.org").await;
    let mut consumer = arranged.send_consumer().await;
    let mut event = arranged.batch(email, email);
    event["Records"][0]["body"] = "not a send job".into();

    let response = consumer.invoke(event).await;

    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(sent_files(&arranged.outbox(), email), 1);
}

/// Waits, if needed, until at least 15 s remain in the current minute, so a tick run now and
/// one run a moment later fall in the same minute.
async fn early_in_a_minute() {
    let second = Timestamp::now().unix_seconds().rem_euclid(60);
    if second > 45 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
}

#[tokio::test]
async fn the_scheduler_requeues_an_email_left_pending_and_reports_it() {
    let arranged = Arranged::new().await;
    early_in_a_minute().await;
    // Accepted two minutes ago and never queued (say, the API died before enqueueing).
    let two_minutes_ago = Timestamp::from_millis(Timestamp::now().unix_millis() - 120_000).unwrap();
    let email = common::pending_email(
        &arranged.store,
        arranged.project,
        "ada@example.org",
        two_minutes_ago,
    )
    .await;
    let mut scheduler = Function::start(env!("CARGO_BIN_EXE_scheduler"), arranged.dir.path()).await;

    let report = scheduler
        .invoke(common::fixture("schedule-tick.json", &[]))
        .await;

    assert_eq!(
        report,
        json!({ "minutesSwept": 1, "requeued": 1, "failed": 0, "campaignRecipients": 0, "workflowTimers": 0 })
    );
    let queue = EmbeddedQueue::open_without_redrive(
        &arranged.dir.path().join("queues.db"),
        "send-transactional",
    )
    .unwrap();
    let messages = queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let job: SendJob = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!((job.project_id, job.email_id), (arranged.project, email));

    let again = scheduler
        .invoke(common::fixture("schedule-tick.json", &[]))
        .await;
    assert_eq!(
        again,
        json!({ "minutesSwept": 0, "requeued": 0, "failed": 0, "campaignRecipients": 0, "workflowTimers": 0 }),
        "a second tick in the same minute has nothing left to do"
    );
}

#[tokio::test]
async fn an_email_sent_through_the_public_api_binary_is_delivered_by_the_send_consumer() {
    let arranged = Arranged::new().await;
    let mut api = Function::start(env!("CARGO_BIN_EXE_public-api"), arranged.dir.path()).await;
    let mut request = common::fixture(
        "contacts-create.json",
        &[("__SECRET_KEY__", &arranged.secret)],
    );
    let body = json!({
        "to": "ada@example.org",
        "from": format!("hello@{}", common::SENDER_DOMAIN),
        "subject": "Hello",
        "body": "<p>Hello from the public API</p>",
    })
    .to_string();
    request["rawPath"] = "/v1/send".into();
    request["routeKey"] = "ANY /v1/{proxy+}".into();
    request["requestContext"]["routeKey"] = "ANY /v1/{proxy+}".into();
    request["requestContext"]["http"]["path"] = "/v1/send".into();
    request["headers"]["content-length"] = body.len().to_string().into();
    request["body"] = body.into();

    let accepted = api.invoke(request).await;

    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    // The job is on the embedded transactional queue; hand it to the consumer as SQS would.
    let queue = EmbeddedQueue::open_without_redrive(
        &arranged.dir.path().join("queues.db"),
        "send-transactional",
    )
    .unwrap();
    let messages = queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let job: SendJob = serde_json::from_str(&messages[0].body).unwrap();
    let mut event = arranged.batch(job.email_id, job.email_id);
    event["Records"].as_array_mut().unwrap().truncate(1);
    event["Records"][0]["body"] = messages[0].body.clone().into();
    let mut consumer = arranged.send_consumer().await;

    let response = consumer.invoke(event).await;

    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(sent_files(&arranged.outbox(), job.email_id), 1);
    assert_eq!(arranged.status(job.email_id).await, EmailStatus::Sent);
}
