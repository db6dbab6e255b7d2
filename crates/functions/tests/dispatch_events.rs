//! The DynamoDB stream fixture through the real `event-dispatch` binary and the webhook job
//! fixture through the real `webhook-delivery` binary, on the embedded store, via the fake Lambda
//! Runtime API (`common`).

mod common;

use common::Function;
use plunk_domain::event::{Event, EventSource};
use plunk_domain::Timestamp;
use plunk_store::repo::webhooks::{DeliveryStatus, SigningSecret, Webhook};
use plunk_store::Store;
use serde_json::{json, Map, Value};
use uuid::Uuid;

async fn webhook(store: &Store, project: Uuid, url: &str, events: &[&str]) -> Uuid {
    let now = Timestamp::now();
    let webhook = Webhook {
        id: Uuid::now_v7(),
        url: url.into(),
        description: None,
        events: events.iter().map(|e| e.to_string()).collect(),
        enabled: true,
        secrets: vec![SigningSecret {
            secret: plunk_webhooks::WebhookSecret::generate()
                .expose()
                .to_owned(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
    };
    store.webhooks().create(project, &webhook).await.unwrap();
    webhook.id
}

fn failures(response: &Value) -> &Vec<Value> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("a partial batch response: {response}"))
}

#[tokio::test]
async fn new_events_from_the_stream_are_counted_and_fanned_out_to_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store_in(dir.path());
    let (project, _) = common::project(&store).await;
    let hook = webhook(
        &store,
        project.id,
        "https://hooks.example.com/a",
        &["signed_up"],
    )
    .await;
    let other = webhook(
        &store,
        project.id,
        "https://hooks.example.com/b",
        &["email.*"],
    )
    .await;
    let (first, second, contact) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let event = common::fixture(
        "dynamodb-stream-events.json",
        &[
            ("__PROJECT_ID__", &project.id.to_string()),
            ("__CONTACT_ID__", &contact.to_string()),
            ("__EVENT_ID_1__", &first.to_string()),
            ("__EVENT_ID_2__", &second.to_string()),
        ],
    );
    let mut function = Function::start(env!("CARGO_BIN_EXE_event-dispatch"), dir.path()).await;

    let response = function.invoke(event).await;

    assert!(failures(&response).is_empty(), "{response}");
    let names = store.event_stats().names(project.id).await.unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(
        (names[0].name.as_str(), names[0].count),
        ("signed_up", 2),
        "the MODIFY is not counted"
    );
    assert_eq!(
        store
            .event_stats()
            .totals(project.id, "signed_up")
            .await
            .unwrap(),
        (2, 1)
    );
    let deliveries = store
        .webhooks()
        .deliveries(project.id, hook, None, None, 10, None)
        .await
        .unwrap();
    let mut event_ids: Vec<Uuid> = deliveries.items.iter().map(|d| d.event_id).collect();
    event_ids.sort();
    assert_eq!(event_ids, [first, second]);
    assert!(deliveries
        .items
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending));
    let body: Value = serde_json::from_str(&deliveries.items[0].payload).unwrap();
    assert_eq!(
        body["data"]["contact"],
        json!({"id": contact.to_string(), "email": "kim@example.com"})
    );
    let unmatched = store
        .webhooks()
        .deliveries(project.id, other, None, None, 10, None)
        .await
        .unwrap();
    assert!(
        unmatched.items.is_empty(),
        "email.* does not match signed_up"
    );
}

#[tokio::test]
async fn the_deployed_webhook_worker_never_calls_a_private_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store_in(dir.path());
    let (project, _) = common::project(&store).await;
    // A receiver that must never be called: the deployed policy refuses loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hook = webhook(&store, project.id, &url, &["*"]).await;
    let event = Event {
        id: Uuid::now_v7(),
        name: "signed_up".into(),
        contact_id: None,
        contact_email: None,
        email_id: None,
        data: Map::new(),
        source: EventSource::Api,
        created_at: Timestamp::now(),
    };
    let delivery = plunk_worker::webhooks::new_delivery(
        hook,
        event.id,
        &event.name,
        event.created_at,
        b"{}".to_vec(),
    );
    store
        .webhooks()
        .create_delivery(project.id, &delivery)
        .await
        .unwrap();
    let job = common::fixture(
        "sqs-webhook-batch.json",
        &[
            ("__PROJECT_ID__", &project.id.to_string()),
            ("__WEBHOOK_ID__", &hook.to_string()),
            ("__DELIVERY_ID__", &delivery.id.to_string()),
        ],
    );
    let mut function = Function::start(env!("CARGO_BIN_EXE_webhook-delivery"), dir.path()).await;

    let response = function.invoke(job).await;

    assert!(failures(&response).is_empty(), "{response}");
    let (after, _) = store
        .webhooks()
        .get_delivery(project.id, hook, delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.attempts, 1);
    assert_eq!(after.error.as_deref(), Some("forbidden_address"));
    assert_eq!(after.status, DeliveryStatus::Pending, "retried on schedule");
    assert!(after.response_status.is_none(), "no request was made");
}
