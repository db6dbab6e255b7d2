//! Event dispatch: what happens after an event is stored (spec public-api.md §2.2 step 6 and
//! events-and-emails.md §3). The change feed brings every new event item here, at least once:
//! the DynamoDB stream through the event-dispatch function on AWS, the embedded backend's
//! `item_stream` through [`run_feed`] locally. For each batch it
//!
//! - keeps each contact's activity summary (what event and email conditions read) up to date;
//! - updates the incremental counters behind `/events/names`, `/events/stats` and usage;
//! - fans the events out to the project's matching webhooks (see [`crate::webhooks`]).
//!
//! Workflows and segments will hook in here too.

use crate::webhooks::WebhookError;
use plunk_domain::event::Event;
use plunk_messaging::queue::Queue;
use plunk_store::feed::ChangeFeed;
use plunk_store::keys;
use plunk_store::table::{Item, StoreError};
use plunk_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Handles batches of new event items.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: Store,
    /// Where webhook deliveries are queued.
    pub webhook_queue: Arc<dyn Queue>,
}

/// The events of a batch of feed items, grouped by project. Items that are not events are
/// skipped (the feed's filter is also applied on AWS, this keeps a wider filter harmless).
pub fn events_by_project(items: &[Item]) -> BTreeMap<Uuid, Vec<Event>> {
    let mut grouped: BTreeMap<Uuid, Vec<Event>> = BTreeMap::new();
    for item in items {
        let Some(project) = keys::project_of_events_partition(&item.key.pk) else {
            continue;
        };
        match serde_json::from_value::<Event>(item.body.clone()) {
            Ok(event) => grouped.entry(project).or_default().push(event),
            Err(e) => tracing::warn!(pk = %item.key.pk, sk = %item.key.sk, error = %e,
                "skipping an undecodable event item"),
        }
    }
    grouped
}

impl Dispatcher {
    /// Handles one batch; an error means "deliver the batch again".
    pub async fn handle(&self, items: &[Item]) -> Result<(), WebhookError> {
        for (project, events) in events_by_project(items) {
            match self.handle_project(project, &events).await {
                // A fault that retrying cannot mend (a corrupt item of this project) must not hold
                // up every other project's events behind it: it is logged and the batch goes on.
                Err(WebhookError::Store(StoreError::Other(e))) => {
                    tracing::error!(%project, error = %e, events = events.len(),
                        "event dispatch failed for good for this project's events; skipped");
                }
                other => other?,
            }
        }
        Ok(())
    }

    async fn handle_project(&self, project: Uuid, events: &[Event]) -> Result<(), WebhookError> {
        // Deliveries first: they are idempotent, while counters would count a retried batch
        // twice.
        crate::webhooks::fan_out(&self.store, self.webhook_queue.as_ref(), project, events).await?;
        // Idempotent too: a summary keeps the latest time of each name, so a redelivery writes
        // nothing.
        self.store.activities().record(project, events).await?;
        self.store.event_stats().count(project, events).await?;
        Ok(())
    }
}

/// How long the local loop waits when the feed is empty.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The local loop over the embedded change feed: read, handle, acknowledge. A failed batch is
/// retried after a pause (it stays unacknowledged).
pub async fn run_feed(dispatcher: Dispatcher, feed: Arc<dyn ChangeFeed>) {
    loop {
        match feed.read(100).await {
            Ok(records) if records.is_empty() => tokio::time::sleep(IDLE_POLL).await,
            Ok(records) => {
                let items: Vec<Item> = records.iter().map(|r| r.item.clone()).collect();
                let last = records.last().map(|r| r.seq).unwrap_or_default();
                match dispatcher.handle(&items).await {
                    Ok(()) => {
                        if let Err(e) = feed.acknowledge(last).await {
                            tracing::warn!(error = %e, "could not acknowledge the change feed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event dispatch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the change feed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
