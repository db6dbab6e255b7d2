//! Events reach workflows through the event dispatcher, which reads every stored event from the
//! change feed: each event of a contact starts the enabled EVENT workflows whose trigger names it
//! (found by one keyed query per name and batch), and wakes the executions of that contact
//! waiting for it (one keyed query per contact and name). Neither reads executions or workflows
//! it does not need; `/v1/track` itself does no workflow work.
//!
//! **One project cannot hold up the feed.** The dispatcher reads one ordered feed for every
//! project on its shard, so it starts at most [`INLINE_STARTS`] workflows per event itself: an
//! event that starts more (a project may enable up to 1,000 workflows on one name) is handed
//! to the workflow worker as one [`StartJob`], which starts them there.

use crate::workflows::engine::{ArrivedEvent, Job};
use plunk_domain::event::Event;
use plunk_domain::workflow::execution::{execution_id_for_event, Execution};
use plunk_domain::workflow::StepType;
use plunk_domain::Timestamp;
use plunk_messaging::queue::Queue;
use plunk_store::repo::executions::NotStarted;
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Most workflows the dispatcher starts for one event itself; an event that starts more goes to
/// the workflow worker as a [`StartJob`].
pub const INLINE_STARTS: usize = 10;

/// A message on the workflow queue: start every workflow an event triggers (an event that
/// triggers more than [`INLINE_STARTS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartJob {
    pub project: Uuid,
    pub start_event: Event,
}

impl StartJob {
    /// The message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What one batch started and woke.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Executions started.
    pub started: usize,
    /// Waiting executions told about an event.
    pub woken: usize,
}

/// Starts and wakes the executions a batch of `project`'s events concern, and queues a message
/// for each. Safe to repeat: an execution's id is derived from its event, and a waiting
/// execution told twice goes on once.
pub async fn on_events(
    store: &Store,
    queue: &dyn Queue,
    project: Uuid,
    events: &[Event],
) -> Result<Started, StoreError> {
    let mut report = Started::default();
    let mut jobs: Vec<Job> = Vec::new();
    let mut handed_on: Vec<String> = Vec::new();
    let mut triggers: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    // Each workflow is read once per batch, however many of its events the batch holds.
    let mut entries: BTreeMap<Uuid, Option<Entry>> = BTreeMap::new();
    for event in events {
        let Some(contact) = event.contact_id else {
            continue;
        };
        if !triggers.contains_key(event.name.as_str()) {
            let workflows = store.workflows().triggered_by(project, &event.name).await?;
            triggers.insert(&event.name, workflows);
        }
        let workflows = &triggers[event.name.as_str()];
        if workflows.len() > INLINE_STARTS {
            handed_on.push(
                StartJob {
                    project,
                    start_event: event.clone(),
                }
                .body(),
            );
        } else {
            for job in start_all(store, project, workflows, &mut entries, contact, event).await? {
                report.started += 1;
                jobs.push(job);
            }
        }
        for waiting in store
            .executions()
            .waiting_for(project, contact, &event.name)
            .await?
        {
            report.woken += 1;
            jobs.push(Job {
                project,
                workflow: waiting.workflow,
                execution: waiting.execution,
                event: Some(ArrivedEvent {
                    name: event.name.clone(),
                    created_at: event.created_at,
                    data: event.data.clone(),
                }),
            });
        }
    }
    enqueue(queue, &jobs).await?;
    send_bodies(queue, &handed_on).await?;
    Ok(report)
}

/// Starts every workflow `event` triggers (a [`StartJob`] on the workflow worker) and queues
/// a message for each execution started; how many.
pub async fn on_start_job(
    store: &Store,
    queue: &dyn Queue,
    job: &StartJob,
) -> Result<usize, StoreError> {
    let event = &job.start_event;
    let Some(contact) = event.contact_id else {
        return Ok(0);
    };
    let workflows = store
        .workflows()
        .triggered_by(job.project, &event.name)
        .await?;
    let mut entries = BTreeMap::new();
    let jobs = start_all(store, job.project, &workflows, &mut entries, contact, event).await?;
    enqueue(queue, &jobs).await?;
    Ok(jobs.len())
}

/// Starts each of `workflows` for `contact` by `event` (entries read once per batch, kept in
/// `entries`); the jobs of the executions started.
async fn start_all(
    store: &Store,
    project: Uuid,
    workflows: &[Uuid],
    entries: &mut BTreeMap<Uuid, Option<Entry>>,
    contact: Uuid,
    event: &Event,
) -> Result<Vec<Job>, StoreError> {
    let mut jobs = Vec::new();
    for workflow in workflows {
        if !entries.contains_key(workflow) {
            entries.insert(*workflow, entry_of(store, project, *workflow).await?);
        }
        let Some(entry) = entries[workflow] else {
            continue;
        };
        if let Some(job) = start(store, project, *workflow, entry, contact, event).await? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// What starting an execution of a workflow needs.
#[derive(Debug, Clone, Copy)]
struct Entry {
    trigger_step: Uuid,
    allow_reentry: bool,
}

/// The entry of `workflow` if it is still there and enabled.
async fn entry_of(
    store: &Store,
    project: Uuid,
    workflow: Uuid,
) -> Result<Option<Entry>, StoreError> {
    let Some((record, _)) = store.workflows().get(project, workflow).await? else {
        return Ok(None);
    };
    if !record.workflow.enabled {
        return Ok(None);
    }
    let graph = store.workflows().graph(project, workflow).await?;
    Ok(graph
        .steps
        .iter()
        .find(|s| s.step_type == StepType::Trigger)
        .map(|trigger| Entry {
            trigger_step: trigger.id,
            allow_reentry: record.workflow.allow_reentry,
        }))
}

/// Starts `workflow` for `contact` by `event` if the re-entry rule lets the contact in; the job
/// to run it.
async fn start(
    store: &Store,
    project: Uuid,
    workflow: Uuid,
    entry: Entry,
    contact: Uuid,
    event: &Event,
) -> Result<Option<Job>, StoreError> {
    let id = execution_id_for_event(workflow, event.id, event.created_at);
    let execution = Execution::start(
        id,
        workflow,
        contact,
        entry.trigger_step,
        event.data.clone(),
        Timestamp::now(),
    );
    match store
        .executions()
        .start(project, &execution, entry.allow_reentry)
        .await?
    {
        Ok(()) => {}
        // Started by an earlier delivery of this batch: its message may not have been sent.
        Err(NotStarted::Duplicate) => {}
        Err(NotStarted::Reentry) => return Ok(None),
    }
    Ok(Some(Job {
        project,
        workflow,
        execution: id,
        event: None,
    }))
}

/// Queues jobs, ten to a batch.
pub async fn enqueue(queue: &dyn Queue, jobs: &[Job]) -> Result<(), StoreError> {
    let bodies: Vec<String> = jobs.iter().map(Job::body).collect();
    send_bodies(queue, &bodies).await
}

/// Queues message bodies, ten to a batch.
async fn send_bodies(queue: &dyn Queue, bodies: &[String]) -> Result<(), StoreError> {
    for chunk in bodies.chunks(10) {
        let sent = if chunk.len() == 1 {
            queue.send(&chunk[0], Duration::ZERO).await
        } else {
            queue.send_batch(chunk).await
        };
        sent.map_err(|e| StoreError::Unavailable(format!("workflow queue: {e}")))?;
    }
    Ok(())
}
