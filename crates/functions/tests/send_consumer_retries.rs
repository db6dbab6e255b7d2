//! The send consumer's handler when a send must be retried: the message's visibility becomes
//! the back-off on its own queue, and the message is reported as a batch item failure.

mod common;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use plunk_domain::email_record::EmailStatus;
use plunk_domain::Timestamp;
use plunk_functions::adapters::QueuesByName;
use plunk_functions::send_consumer;
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_messaging::queue::{Queue, QueueError, ReceivedMessage};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer, TablePace};
use plunk_worker::send::{backoff, SendWorker, SenderConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The transactional queue's name in the fixture's `eventSourceARN`.
const QUEUE_NAME: &str = "plunk-SendTransactionalQueue-Q7rT2mKx9LbA";

/// A provider that is always throttling.
struct Throttled;

#[async_trait]
impl Mailer for Throttled {
    async fn send(&self, _: &OutgoingEmail) -> Result<String, MailError> {
        Err(MailError::Throttled(
            "Maximum sending rate exceeded.".into(),
        ))
    }
}

/// A queue that only records visibility changes.
#[derive(Default)]
struct Recorded {
    visibility: Mutex<Vec<(String, Duration)>>,
}

#[async_trait]
impl Queue for Recorded {
    async fn send(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        unimplemented!()
    }
    async fn send_batch(&self, _: &[String]) -> Result<(), QueueError> {
        unimplemented!()
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        unimplemented!()
    }
    async fn delete(&self, _: &str) -> Result<(), QueueError> {
        unimplemented!()
    }
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.visibility
            .lock()
            .unwrap()
            .push((receipt.to_owned(), visibility));
        Ok(())
    }
}

async fn arrange() -> (Store, SendWorker, Uuid, Uuid) {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let (project, _) = common::project(&store).await;
    common::verified_domain(&store, project.id).await;
    let email =
        common::pending_email(&store, project.id, "ada@example.org", Timestamp::now()).await;
    let worker = SendWorker::new(
        store.clone(),
        Arc::new(Throttled),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    );
    (store, worker, project.id, email)
}

/// The fixture's first record, for `email`.
fn event(project: Uuid, email: Uuid) -> (LambdaEvent<SqsEvent>, String, String) {
    let mut value = common::fixture(
        "sqs-send-batch.json",
        &[
            ("__PROJECT_ID__", &project.to_string()),
            ("__EMAIL_ID_1__", &email.to_string()),
        ],
    );
    value["Records"].as_array_mut().unwrap().truncate(1);
    let record = &value["Records"][0];
    let id = record["messageId"].as_str().unwrap().to_owned();
    let receipt = record["receiptHandle"].as_str().unwrap().to_owned();
    let payload: SqsEvent = serde_json::from_value(value).unwrap();
    (LambdaEvent::new(payload, Context::default()), id, receipt)
}

#[tokio::test]
async fn a_throttled_send_is_delayed_on_its_queue_and_reported_for_retry() {
    let (store, worker, project, email) = arrange().await;
    let queue = Arc::new(Recorded::default());
    let queues = QueuesByName::new([(QUEUE_NAME.to_owned(), queue.clone() as Arc<dyn Queue>)]);
    let (event, message_id, receipt) = event(project, email);

    let response = send_consumer::handle(&worker, &queues, event)
        .await
        .unwrap();

    let reported: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, [message_id]);
    assert_eq!(*queue.visibility.lock().unwrap(), [(receipt, backoff(1))]);
    let record = store.emails().get(project, email).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        EmailStatus::Pending,
        "visible, waiting for the retry"
    );
    assert_eq!(record.attempts, 1);
}

#[tokio::test]
async fn a_retry_on_an_unknown_queue_is_still_reported() {
    let (_, worker, project, email) = arrange().await;
    let (event, message_id, _) = event(project, email);

    let response = send_consumer::handle(&worker, &QueuesByName::default(), event)
        .await
        .unwrap();

    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, message_id);
}

/// A provider that accepts everything.
struct Accepting;

#[async_trait]
impl Mailer for Accepting {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        Ok(format!("msg-{}", email.email_id))
    }
}

#[tokio::test]
async fn a_batch_takes_its_pace_slots_in_one_write_of_the_pace_item() {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let (project, _) = common::project(&store).await;
    common::verified_domain(&store, project.id).await;
    let now = Timestamp::now();
    let first = common::pending_email(&store, project.id, "ada@example.org", now).await;
    let second = common::pending_email(&store, project.id, "bob@example.org", now).await;
    let worker = SendWorker::new(
        store.clone(),
        Arc::new(Accepting),
        Arc::new(MemoryBlobs::default()),
        // Slots 100 ms apart: a loaded machine does not let the second slot pass (a passed
        // spare is dropped and taken again with a write) before the second send takes it.
        Pacer::new(
            Arc::new(TablePace::new(store.table().clone())),
            Arc::new(SystemClock),
            10.0,
        ),
        SenderConfig::default(),
    );
    let value = common::fixture(
        "sqs-send-batch.json",
        &[
            ("__PROJECT_ID__", &project.id.to_string()),
            ("__EMAIL_ID_1__", &first.to_string()),
            ("__EMAIL_ID_2__", &second.to_string()),
        ],
    );
    let event = LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default());
    let queues = QueuesByName::new([]);

    let response = send_consumer::handle(&worker, &queues, event)
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    for id in [first, second] {
        let record = store.emails().get(project.id, id).await.unwrap().unwrap();
        assert_eq!(record.status, EmailStatus::Sent);
    }
    let pace = store
        .table()
        .get(&plunk_store::keys::pacing_state())
        .await
        .unwrap()
        .expect("the pace item");
    assert_eq!(
        pace.version, 1,
        "both sends' slots were reserved by one write"
    );
}

/// A provider that panics on one recipient and accepts the others.
struct PanicsOn(&'static str);

#[async_trait]
impl Mailer for PanicsOn {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        if email.to.email == self.0 {
            panic!("provider client blew up on {}", email.to.email);
        }
        Ok(format!("msg-{}", email.email_id))
    }
}

#[tokio::test]
async fn a_panic_while_sending_fails_that_email_at_once_and_the_batch_goes_on() {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let (hostile, _) = common::project(&store).await;
    let (other, _) = common::project(&store).await;
    common::verified_domain_named(&store, hostile.id, "hostile.example").await;
    common::verified_domain_named(&store, other.id, "other.example").await;
    let now = Timestamp::now();
    let boom = common::pending_email_from(
        &store,
        hostile.id,
        "boom@example.org",
        "hostile.example",
        now,
    )
    .await;
    let fine =
        common::pending_email_from(&store, other.id, "ada@example.org", "other.example", now).await;
    let worker = SendWorker::new(
        store.clone(),
        Arc::new(PanicsOn("boom@example.org")),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    );
    let value = common::fixture(
        "sqs-send-batch-two-projects.json",
        &[
            ("__PROJECT_ID_1__", &hostile.id.to_string()),
            ("__EMAIL_ID_1__", &boom.to_string()),
            ("__PROJECT_ID_2__", &other.id.to_string()),
            ("__EMAIL_ID_2__", &fine.to_string()),
        ],
    );
    let event = LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default());

    let response = send_consumer::handle(&worker, &QueuesByName::new([]), event)
        .await
        .unwrap();

    // Both messages are done: the panicking one ended in a state the user can see.
    assert!(response.batch_item_failures.is_empty());
    let failed = store.emails().get(hostile.id, boom).await.unwrap().unwrap();
    assert_eq!(failed.status, EmailStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.starts_with("INTERNAL_ERROR: provider client blew up"),
        "{error}"
    );
    let sent = store.emails().get(other.id, fine).await.unwrap().unwrap();
    assert_eq!(sent.status, EmailStatus::Sent);
}
