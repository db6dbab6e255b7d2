//! Event dispatch: what happens after an event is stored, a contact written or a STATIC segment
//! membership changed. The change feed brings each such item here (`plunk_store::keys::fed`), at
//! least once: the DynamoDB stream through the event-dispatch function on AWS, the embedded
//! backend's `item_stream` through [`run_feed`] locally. For each batch it
//!
//! - fans the events out to the project's matching webhooks (see [`crate::webhooks`]);
//! - keeps each contact's activity summary (what event and email conditions read) up to date;
//! - updates the incremental counters behind `/events/names`, `/events/stats` and usage;
//! - re-evaluates the DYNAMIC segments of every contact the batch touched
//!   ([`crate::segments::membership`]), storing entry and exit events of tracked segments, which
//!   come back through the feed as events.
//!
//! - starts the workflows the events trigger and wakes the executions waiting for them
//!   ([`crate::workflows::start`]).

use crate::segments::membership::Batch;
use crate::webhooks::WebhookError;
use plunk_domain::event::Event;
use plunk_domain::Timestamp;
use plunk_messaging::queue::Queue;
use plunk_store::feed::ChangeFeed;
use plunk_store::keys;
use plunk_store::keys::Fed;
use plunk_store::table::{Item, StoreError};
use plunk_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Handles batches of new event items.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: Store,
    /// Where webhook deliveries are queued.
    pub webhook_queue: Arc<dyn Queue>,
    /// Where workflow executions are queued: events start and wake them.
    pub workflow_queue: Arc<dyn Queue>,
}

/// What a batch of feed items holds for one project.
#[derive(Debug, Default)]
pub struct ProjectBatch {
    /// New events, in feed order.
    pub events: Vec<Event>,
    /// Contacts whose segment membership may have changed: written contacts, contacts of the
    /// events, contacts that joined or left a STATIC segment.
    pub contacts: BTreeSet<Uuid>,
}

/// A batch of feed items grouped by project. Items that are not fed are skipped (the feed's
/// filter is also applied on AWS, this keeps a wider filter harmless).
pub fn by_project(items: &[Item]) -> BTreeMap<Uuid, ProjectBatch> {
    let mut grouped: BTreeMap<Uuid, ProjectBatch> = BTreeMap::new();
    for item in items {
        let Some((project, kind)) = keys::fed(&item.key.pk) else {
            continue;
        };
        let batch = grouped.entry(project).or_default();
        match kind {
            Fed::Event => match serde_json::from_value::<Event>(item.body.clone()) {
                Ok(event) => {
                    batch.contacts.extend(event.contact_id);
                    batch.events.push(event);
                }
                Err(e) => tracing::warn!(pk = %item.key.pk, sk = %item.key.sk, error = %e,
                    "skipping an undecodable event item"),
            },
            Fed::Contact => batch.contacts.extend(item.key.sk.parse::<Uuid>().ok()),
            Fed::StaticMembership => batch.contacts.extend(
                item.body["contactId"]
                    .as_str()
                    .and_then(|c| c.parse::<Uuid>().ok()),
            ),
        }
    }
    grouped
}

impl Dispatcher {
    /// Handles one batch; an error means "deliver the batch again".
    pub async fn handle(&self, items: &[Item]) -> Result<(), WebhookError> {
        // A batch that fails comes back from its first item (the stream and the local feed both
        // redeliver from the first unacknowledged record): that names it.
        let first = items
            .first()
            .map(|i| (i.key.pk.as_str(), i.key.sk.as_str(), i.version))
            .unwrap_or_default();
        for (project, batch) in by_project(items) {
            let key = Batch::new(
                &[
                    b"feed",
                    project.as_bytes(),
                    first.0.as_bytes(),
                    first.1.as_bytes(),
                    &first.2.to_be_bytes(),
                ],
                Timestamp::now().unix_millis(),
            );
            match self.handle_project(project, &batch, &key).await {
                // A fault that retrying cannot mend (a corrupt item of this project) must not hold
                // up every other project's events behind it: it is logged and the batch goes on.
                Err(WebhookError::Store(StoreError::Other(e))) => {
                    tracing::error!(%project, error = %e, events = batch.events.len(),
                        "event dispatch failed for good for this project's events; skipped");
                }
                other => other?,
            }
        }
        Ok(())
    }

    async fn handle_project(
        &self,
        project: Uuid,
        batch: &ProjectBatch,
        key: &Batch,
    ) -> Result<(), WebhookError> {
        let events = &batch.events;
        // Idempotent steps first, the event counters last: a batch retried after a failure
        // counts them again, so nothing that can fail comes after them. The segment counts in
        // between remember the batch's key, so a retry does not count them twice.
        if !events.is_empty() {
            crate::webhooks::fan_out(&self.store, self.webhook_queue.as_ref(), project, events)
                .await?;
        }
        // The summaries and the memberships, in one write per contact: a summary keeps the
        // latest time of each name and evaluation writes only differences, so a redelivery
        // writes nothing.
        let contacts: Vec<Uuid> = batch.contacts.iter().copied().collect();
        crate::segments::membership::update(&self.store, project, events, &contacts, key).await?;
        if !events.is_empty() {
            // Starting is idempotent (an execution's id comes from its event), waking too.
            crate::workflows::start::on_events(
                &self.store,
                self.workflow_queue.as_ref(),
                project,
                events,
            )
            .await?;
        }
        if !events.is_empty() {
            self.store.event_stats().count(project, events).await?;
        }
        Ok(())
    }
}

/// How long the local loop waits when the feed is empty.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The local loop over the embedded change feed: read, handle, acknowledge. A failed batch is
/// retried after a pause (it stays unacknowledged).
///
/// The loop ends when `stop` turns true, but only between batches: a batch being handled is
/// finished and acknowledged first. The event counters are not idempotent (a batch handled twice
/// counts twice), so a server stopped with Ctrl-C or SIGTERM must not leave a counted batch
/// unacknowledged for the next start to count again.
pub async fn run_feed(
    dispatcher: Dispatcher,
    feed: Arc<dyn ChangeFeed>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stopping = |stop: &tokio::sync::watch::Receiver<bool>| *stop.borrow();
    // Waits `pause`, or less when asked to stop.
    async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, pause: Duration) {
        let _ = tokio::time::timeout(pause, stop.wait_for(|s| *s)).await;
    }
    while !stopping(&stop) {
        match feed.read(100).await {
            Ok(records) if records.is_empty() => pause(&mut stop, IDLE_POLL).await,
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
                        pause(&mut stop, Duration::from_secs(1)).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the change feed");
                pause(&mut stop, Duration::from_secs(1)).await;
            }
        }
    }
}
