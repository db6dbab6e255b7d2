//! Events reach workflows (workflows.md §4) through the event dispatcher, which reads every
//! stored event from the change feed: each event of a contact starts the enabled EVENT workflows
//! whose trigger names it (found by one keyed query per name and batch), and wakes the
//! executions of that contact waiting for it (one keyed query per contact and name). Neither
//! reads executions or workflows it does not need; `/v1/track` itself does no workflow work.

use crate::workflows::engine::{ArrivedEvent, Job};
use plunk_domain::event::Event;
use plunk_domain::workflow::execution::{execution_id_for_event, Execution};
use plunk_domain::workflow::StepType;
use plunk_domain::Timestamp;
use plunk_messaging::queue::Queue;
use plunk_store::repo::executions::NotStarted;
use plunk_store::table::StoreError;
use plunk_store::Store;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

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
        for workflow in &triggers[event.name.as_str()] {
            if !entries.contains_key(workflow) {
                entries.insert(*workflow, entry_of(store, project, *workflow).await?);
            }
            let Some(entry) = entries[workflow] else {
                continue;
            };
            if let Some(job) = start(store, project, *workflow, entry, contact, event).await? {
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
    Ok(report)
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
