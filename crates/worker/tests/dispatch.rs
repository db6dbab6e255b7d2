//! The event dispatcher over the embedded change feed: counters per project, and one project's
//! unmendable fault (a corrupt webhook item) does not hold up the others.

use plunk_domain::event::{Event, EventSource};
use plunk_domain::project::Tracking;
use plunk_domain::Timestamp;
use plunk_messaging::memory::MemoryQueue;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::table::{Condition, Item};
use plunk_store::{keys, Store};
use plunk_worker::dispatch::Dispatcher;
use serde_json::{json, Map};
use std::sync::Arc;
use uuid::Uuid;

fn event(name: &str) -> Event {
    Event {
        id: Uuid::now_v7(),
        name: name.into(),
        contact_id: Some(Uuid::now_v7()),
        contact_email: Some("kim@example.com".into()),
        email_id: None,
        data: Map::new(),
        source: EventSource::Api,
        created_at: Timestamp::now(),
    }
}

#[tokio::test]
async fn a_project_with_a_corrupt_webhook_does_not_block_the_others() {
    let store = Store::sqlite(SqliteTable::in_memory().unwrap());
    let mut projects = Vec::new();
    for name in ["broken", "fine"] {
        let (p, _, _) = store
            .projects()
            .create(name, 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        projects.push(p.id);
    }
    let (broken, fine) = (projects[0], projects[1]);
    store
        .table()
        .put(
            Item::new(
                keys::webhook(broken, Uuid::now_v7()),
                json!({"not": "a webhook"}),
            ),
            Condition::None,
        )
        .await
        .unwrap();
    store
        .events()
        .record(broken, &event("signed_up"))
        .await
        .unwrap();
    store
        .events()
        .record(fine, &event("signed_up"))
        .await
        .unwrap();
    store
        .events()
        .record(fine, &event("signed_up"))
        .await
        .unwrap();

    let feed = store
        .change_feed()
        .expect("the embedded store has a feed")
        .clone();
    let records = feed.read(100).await.unwrap();
    assert_eq!(records.len(), 3, "every new event is in the feed");
    let dispatcher = Dispatcher {
        store: store.clone(),
        webhook_queue: Arc::new(MemoryQueue::default()),
        workflow_queue: Arc::new(MemoryQueue::default()),
    };
    let items: Vec<Item> = records.iter().map(|r| r.item.clone()).collect();
    dispatcher.handle(&items).await.expect("the batch is done");

    assert_eq!(
        store.event_stats().totals(fine, "signed_up").await.unwrap(),
        (2, 2)
    );
    assert_eq!(
        store
            .event_stats()
            .totals(broken, "signed_up")
            .await
            .unwrap(),
        (0, 0)
    );
}
