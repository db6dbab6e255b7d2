//! Feeds the real SES samples in `tests/events/ses/` (SNS-wrapped and EventBridge-wrapped)
//! through the real `feedback-consumer` binary as SQS events, through a fake Lambda Runtime API
//! (`common`), on DynamoDB Local when `PLUNK_TEST_DYNAMODB_ENDPOINT` is set (else on the embedded
//! store), and checks the email record, its events and the suppression list.

mod common;

use common::Function;
use plunk_domain::email_record::{EmailRecord, EmailStatus, SourceType};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::feedback::SuppressionReason;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_store::backend::dynamo::DynamoTable;
use plunk_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// The ids every sample carries (tests/events/ses/README.md).
const EMAIL_ID: &str = "0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56";
const PROJECT_ID: &str = "0193a1f0-3c00-7d21-8a4e-5f6b7c8d9e01";
const MESSAGE_ID: &str = "0100018e2a7f6c3d-5e8b1a2c-4d6f-4b1e-9a3c-7e2d1f0b9c8a-000000";

fn project() -> Uuid {
    PROJECT_ID.parse().unwrap()
}

fn email_id() -> Uuid {
    EMAIL_ID.parse().unwrap()
}

/// The store the binary will use and the variables that name it.
struct Backend {
    dir: tempfile::TempDir,
    store: Store,
    env: Vec<(&'static str, String)>,
}

async fn backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let Some(endpoint) = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
    else {
        println!("PLUNK_TEST_DYNAMODB_ENDPOINT not set: on the embedded store");
        let store = common::store_in(dir.path());
        return Backend {
            dir,
            store,
            env: vec![],
        };
    };
    let aws = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    for (k, v) in aws {
        if std::env::var(k).is_err() {
            std::env::set_var(k, v);
        }
    }
    let table = format!("feedback-fn-{}", Uuid::now_v7().simple());
    let dynamo = DynamoTable::from_env(&table, Some(&endpoint)).await;
    dynamo.create_table_if_missing().await.unwrap();
    let mut env: Vec<(&'static str, String)> =
        aws.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    env.extend([
        ("PLUNK_STORE", "dynamo".to_owned()),
        ("PLUNK_TABLE", table),
        ("PLUNK_DYNAMODB_ENDPOINT", endpoint),
    ]);
    Backend {
        dir,
        store: Store::new(Arc::new(dynamo)),
        env,
    }
}

impl Backend {
    async fn consumer(&self) -> Function {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Function::start_with(
            env!("CARGO_BIN_EXE_feedback-consumer"),
            self.dir.path(),
            &env,
        )
        .await
    }

    async fn email(&self) -> EmailRecord {
        self.store
            .emails()
            .get(project(), email_id())
            .await
            .unwrap()
            .unwrap()
    }

    async fn events(&self, name: &str) -> usize {
        self.store
            .events()
            .list(project(), Some(name), 100, None)
            .await
            .unwrap()
            .items
            .len()
    }
}

/// The sample email: a tracked campaign email to `ada@example.org` that the sender recorded as
/// sent (with the sample's message id), to `contact`.
async fn sample_email(store: &Store, contact: Option<Uuid>) {
    let sent_at = Timestamp::parse_rfc3339("2026-03-01T09:30:00.702Z").unwrap();
    let record = EmailRecord {
        id: email_id(),
        contact_id: contact,
        to: "ada@example.org".into(),
        to_name: Some("Ada".into()),
        from: "billing@acme.io".into(),
        from_name: "Acme".into(),
        reply_to: None,
        subject: "Your receipt".into(),
        source_type: SourceType::Campaign,
        template_id: None,
        campaign_id: Some(Uuid::from_u128(9)),
        workflow_id: None,
        workflow_execution_id: None,
        marketing: true,
        tracking: true,
        test: false,
        status: EmailStatus::Sent,
        error: None,
        attempts: 1,
        message_id: Some(MESSAGE_ID.into()),
        opens: 0,
        clicks: 0,
        bounce_type: None,
        bounce_sub_type: None,
        queued_at: Some(sent_at),
        sending_at: Some(sent_at),
        sent_at: Some(sent_at),
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        bounced_at: None,
        complained_at: None,
        delayed_at: None,
        failed_at: None,
        suppressed_at: None,
        created_at: sent_at,
        updated_at: sent_at,
    };
    assert!(store
        .emails()
        .accept(project(), &record, None)
        .await
        .unwrap());
}

/// An SQS event whose messages are the sample files, in order.
fn sqs_event(samples: &[&str]) -> Value {
    let records: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = format!(
                "{}/../../tests/events/ses/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            json!({
                "messageId": format!("6c0e9b1a-0000-4000-8000-{i:012}"),
                "receiptHandle": format!("AQEB{i}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1772357460000",
                    "SenderId": "AIDAEVENTBRIDGE",
                    "ApproximateFirstReceiveTimestamp": "1772357460050"
                },
                "messageAttributes": {},
                "md5OfBody": "00000000000000000000000000000000",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:plunk-FeedbackQueue-A1b2C3",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn failures(response: &Value) -> usize {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("a partial batch response: {response}"))
        .len()
}

#[tokio::test]
async fn sns_wrapped_samples_take_the_email_to_bounced_and_suppress_the_address() {
    let b = backend().await;
    sample_email(&b.store, None).await;
    let mut consumer = b.consumer().await;

    let response = consumer
        .invoke(sqs_event(&[
            "sns-subscription-confirmation.json",
            "sns-send.json",
            "sns-delivery.json",
            "sns-open.json",
            "sns-click.json",
            "sns-delivery-delay.json",
            "sns-bounce.json",
            "sns-legacy-bounce.json",
            "sns-subscription.json",
        ]))
        .await;

    assert_eq!(failures(&response), 0, "{response}");
    let e = b.email().await;
    assert_eq!(e.status, EmailStatus::Bounced);
    assert_eq!((e.opens, e.clicks), (1, 1));
    assert_eq!(e.bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(
        e.delivered_at.map(|t| t.to_string()).as_deref(),
        Some("2026-03-01T09:30:02.114Z")
    );
    assert!(e.delayed_at.is_some());
    for name in [
        "email.delivery",
        "email.open",
        "email.click",
        "email.deliverydelay",
        "email.bounce",
    ] {
        assert_eq!(b.events(name).await, 1, "{name}");
    }
    assert_eq!(
        b.events("email.sent").await,
        0,
        "the sender recorded the send"
    );
    let s = b
        .store
        .suppressions()
        .get(project(), &EmailAddress::parse("ada@example.org").unwrap())
        .await
        .unwrap()
        .expect("suppressed");
    assert_eq!(s.reason, SuppressionReason::HardBounce);
    assert_eq!(s.email_id, Some(email_id()));

    // The whole batch again, as SQS may redeliver it: nothing changes.
    let again = consumer
        .invoke(sqs_event(&["sns-delivery.json", "sns-bounce.json"]))
        .await;
    assert_eq!(failures(&again), 0, "{again}");
    assert_eq!(b.email().await, e);
    assert_eq!(b.events("email.delivery").await, 1);
}

#[tokio::test]
async fn eventbridge_samples_apply_once_alongside_their_sns_twins_and_a_complaint_unsubscribes() {
    let b = backend().await;
    let contact = b
        .store
        .contacts()
        .upsert(
            project(),
            &EmailAddress::parse("ada@example.org").unwrap(),
            Some(true),
            &Default::default(),
            SubscriptionSource::Api,
        )
        .await
        .unwrap()
        .contact;
    sample_email(&b.store, Some(contact.id)).await;
    let mut consumer = b.consumer().await;

    let response = consumer
        .invoke(sqs_event(&[
            "eventbridge-click.json",
            "eventbridge-delivery.json",
            "eventbridge-send.json",
            "sns-delivery.json",
            "raw-delivery.json",
            "eventbridge-open.json",
            "eventbridge-complaint.json",
            "sns-complaint.json",
        ]))
        .await;

    assert_eq!(failures(&response), 0, "{response}");
    let e = b.email().await;
    assert_eq!(e.status, EmailStatus::Complained);
    assert_eq!((e.opens, e.clicks), (1, 1));
    assert_eq!(
        b.events("email.delivery").await,
        1,
        "one SES event, three envelopes"
    );
    assert_eq!(b.events("email.complaint").await, 1);
    let after = b
        .store
        .contacts()
        .get(project(), contact.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!after.subscribed);
    let unsubscribed = b
        .store
        .events()
        .list(project(), Some("contact.unsubscribed"), 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(unsubscribed.len(), 1);
    assert_eq!(unsubscribed[0].data["source"], "complaint");
    assert_eq!(unsubscribed[0].email_id, Some(email_id()));
    let s = b
        .store
        .suppressions()
        .get(project(), &contact.email)
        .await
        .unwrap()
        .expect("suppressed");
    assert_eq!(s.reason, SuppressionReason::Complaint);
    let counter = |name: &'static str| {
        let store = b.store.clone();
        async move {
            store
                .table()
                .get(&plunk_store::keys::campaign_counter(
                    project(),
                    Uuid::from_u128(9),
                    name,
                ))
                .await
                .unwrap()
                .and_then(|i| i.counter)
                .unwrap_or(0)
        }
    };
    assert_eq!(counter("deliveredCount").await, 1);
    assert_eq!(counter("complainedCount").await, 1);
}

#[tokio::test]
async fn feedback_for_an_email_the_store_does_not_have_is_deleted_not_retried() {
    let b = backend().await;
    let mut consumer = b.consumer().await;

    let response = consumer
        .invoke(sqs_event(&["sns-delivery.json", "eventbridge-bounce.json"]))
        .await;

    assert_eq!(failures(&response), 0, "{response}");
    assert_eq!(b.events("email.delivery").await, 0);
}
