//! Running executions: a message on the workflow queue names one execution;
//! [`Engine::advance`] runs its steps until it waits, ends or has run a bounded number of steps.
//!
//! **Each step done once.** Every step is one transaction conditional on the execution's version
//! ([`plunk_store::repo::executions::Executions::save`]): the step's record and the execution's
//! next state are written together, so a duplicated message, a crash between steps or two
//! workers on one execution record each step once. What a step does outside the execution is
//! made safe to repeat: a SEND_EMAIL step's email id is derived from the execution and the step
//! (a second accept finds the record and queues nothing), a WEBHOOK call carries an
//! `Idempotency-Key` that is the same on every attempt, and an UPDATE_CONTACT writes values (a
//! repeat changes nothing and emits no second subscription event).
//!
//! **Waiting.** DELAY and WAIT_FOR_EVENT steps leave the execution WAITING with a timer in the
//! minute their time ends (the scheduler's tick reads it, [`super::timers`]) and, for an event,
//! a wait under the contact that the event dispatcher finds by a keyed lookup
//! ([`super::start`]); either puts a message on the queue and the execution goes on here.

use crate::accept::{AcceptError, Acceptor, Message, Recipient, RecipientContact};
use crate::clock::Clock;
use crate::workflows::webhook_step::{self, WebhookStepInput, WebhookStepResult};
use plunk_domain::contact::{Contact, DataChange};
use plunk_domain::email_record::{Origin, SendClass};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::project::{Project, Tracking};
use plunk_domain::template::TemplateType;
use plunk_domain::template::{render, RenderContext};
use plunk_domain::validation::Patch;
use plunk_domain::workflow::config::{
    parse_config, EmailRecipient, StepConfig, SubscriptionAction,
};
use plunk_domain::workflow::execution::{
    step_execution_id, Execution, ExecutionStatus, StepExecution, StepStatus, Wait,
};
use plunk_domain::workflow::{next_step, Step, WaitOutcome};
use plunk_domain::{EmailAddress, Timestamp};
use plunk_messaging::queue::Queue;
use plunk_store::repo::workflows::Graph;
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most steps one message runs before handing the execution to a new message: a graph has at
/// most 100 steps and no cycle, so this ends any execution's run.
const MAX_STEPS_PER_MESSAGE: usize = 120;

/// A message on the workflow queue: go on with one execution. An event that a WAIT_FOR_EVENT
/// may be waiting for rides along.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub project: Uuid,
    pub workflow: Uuid,
    pub execution: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<ArrivedEvent>,
}

/// An event of the execution's contact, for a WAIT_FOR_EVENT step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArrivedEvent {
    pub name: String,
    pub created_at: Timestamp,
    pub data: Map<String, Value>,
}

/// A message on the workflow queue: delete what the executions of a deleted workflow left (their
/// step records, entries and counter), [`PURGE_BUDGET`] items a message. Queued with a delay
/// before the workflow is deleted, so it finds the workflow gone; one that finds it still there
/// (the delete did not happen) does nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeJob {
    pub project: Uuid,
    pub purge_workflow: Uuid,
}

impl PurgeJob {
    /// The message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Items one purge message deletes before handing the rest to a new message (a few seconds).
pub const PURGE_BUDGET: usize = 2_000;

/// How long a purge message waits before it is worked: time for the delete that queued it.
pub const PURGE_DELAY: Duration = Duration::from_secs(60);

impl Job {
    /// The message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs executions.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    /// Accepts the emails of SEND_EMAIL steps (at workflow priority).
    pub acceptor: Acceptor,
    /// The workflow queue: WEBHOOK retries are put back on it with a delay.
    pub queue: Arc<dyn Queue>,
    /// WEBHOOK steps may call loopback and private addresses (local development only).
    pub allow_private_webhooks: bool,
    /// What "now" is for timers and step records (tests move it forward).
    pub clock: Arc<dyn Clock>,
}

/// What one step did.
enum Outcome {
    /// Go on along the plain transition, or the branch or wait outcome named.
    Next {
        route: Option<String>,
        outcome: Option<WaitOutcome>,
        status: StepStatus,
        output: Option<Value>,
    },
    /// Wait (the execution's `wait` is set).
    Wait { record: StepExecution },
    /// Try the step again after `delay` (a WEBHOOK retry).
    Retry { delay: Duration, output: Value },
    /// End the execution.
    End {
        status: ExecutionStatus,
        reason: Option<String>,
        step: StepStatus,
        output: Option<Value>,
        error: Option<String>,
    },
}

impl Outcome {
    fn plain(output: Option<Value>) -> Self {
        Outcome::Next {
            route: None,
            outcome: None,
            status: StepStatus::Completed,
            output,
        }
    }

    fn fail(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Outcome::End {
            status: ExecutionStatus::Failed,
            reason: Some(reason.clone()),
            step: StepStatus::Failed,
            output: None,
            error: Some(reason),
        }
    }
}

impl Engine {
    /// Works one message of the workflow queue: a [`Job`], a
    /// [`StartJob`](crate::workflows::start::StartJob) or a [`PurgeJob`]. An error means
    /// "deliver the message again"; a message that is neither is dropped (logged): retrying
    /// cannot mend it.
    pub async fn work(&self, body: &str) -> Result<(), StoreError> {
        if let Ok(job) = serde_json::from_str::<Job>(body) {
            return self.advance(&job).await;
        }
        if let Ok(job) = serde_json::from_str::<crate::workflows::start::StartJob>(body) {
            let started =
                crate::workflows::start::on_start_job(&self.store, self.queue.as_ref(), &job)
                    .await?;
            tracing::info!(started, event = %job.start_event.id, "workflows started by one event");
            return Ok(());
        }
        match serde_json::from_str::<PurgeJob>(body) {
            Ok(purge) => self.purge(&purge).await,
            Err(e) => {
                tracing::error!(error = %e, "dropping a workflow message that is not a job");
                Ok(())
            }
        }
    }

    /// Deletes a page of what a deleted workflow's executions left, and queues the rest.
    async fn purge(&self, job: &PurgeJob) -> Result<(), StoreError> {
        let workflows = self.store.workflows();
        if workflows
            .get(job.project, job.purge_workflow)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let more = self
            .store
            .executions()
            .purge(job.project, job.purge_workflow, PURGE_BUDGET)
            .await?;
        if more {
            self.queue
                .send(&job.body(), Duration::ZERO)
                .await
                .map_err(|e| StoreError::Unavailable(format!("workflow queue: {e}")))?;
        }
        Ok(())
    }

    /// Goes on with the execution a message names. An error means "deliver the message again".
    pub async fn advance(&self, job: &Job) -> Result<(), StoreError> {
        let executions = self.store.executions();
        let mut graph: Option<Graph> = None;
        for _ in 0..MAX_STEPS_PER_MESSAGE {
            let Some((execution, version)) = executions
                .get(job.project, job.workflow, job.execution)
                .await?
            else {
                return Ok(());
            };
            if !execution.status.is_active() {
                return Ok(());
            }
            if graph.is_none() {
                graph = Some(
                    self.store
                        .workflows()
                        .graph(job.project, job.workflow)
                        .await?,
                );
            }
            let graph = graph.as_ref().expect("read above");
            let now = Timestamp::from_millis(self.clock.now_ms()).unwrap_or_else(Timestamp::now);
            let progressed = match execution.status {
                ExecutionStatus::Waiting => {
                    self.finish_wait(job, &execution, version, graph, now)
                        .await?
                }
                _ => self.run_step(job, &execution, version, graph, now).await?,
            };
            match progressed {
                Progress::Stop => return Ok(()),
                Progress::Again => continue,
            }
        }
        // A long run goes on in a new message rather than holding this one.
        self.queue
            .send(&job.body(), Duration::ZERO)
            .await
            .map_err(|e| StoreError::Unavailable(format!("workflow queue: {e}")))
    }

    /// A WAITING execution: goes on if its time has come or the event it waits for arrived.
    async fn finish_wait(
        &self,
        job: &Job,
        execution: &Execution,
        version: u64,
        graph: &Graph,
        now: Timestamp,
    ) -> Result<Progress, StoreError> {
        let Some(wait) = execution.wait.clone() else {
            return Ok(Progress::Stop);
        };
        let now_ms = now.unix_millis();
        // Ends fall on whole minutes (`wait_of`), so the tick of a timer's minute finds it due.
        let due = |at: i64| now_ms >= at;
        let (outcome, merge) = match &wait {
            Wait::Delay { due_ms, .. } if due(*due_ms) => (None, None),
            Wait::Event {
                event_name,
                since_ms,
                ..
            } if job.event.as_ref().is_some_and(|e| {
                e.name == *event_name && e.created_at.unix_millis() >= *since_ms
            }) =>
            {
                (Some(WaitOutcome::Event), job.event.as_ref())
            }
            Wait::Event {
                timeout_ms: Some(timeout),
                ..
            } if due(*timeout) => (Some(WaitOutcome::Timeout), None),
            _ => return Ok(Progress::Stop),
        };
        let Some(step) = graph.step(wait.step_id()) else {
            return self
                .end(
                    job.project,
                    execution,
                    version,
                    None,
                    ExecutionStatus::Failed,
                    Some("STEP_DELETED".into()),
                    now,
                )
                .await;
        };
        let mut after = execution.clone();
        after.wait = None;
        after.status = ExecutionStatus::Running;
        if let Some(event) = merge {
            for (k, v) in &event.data {
                after.context.insert(k.clone(), v.clone());
            }
        }
        let place = execution.steps_run.saturating_sub(1);
        let mut record = self
            .store
            .executions()
            .steps(job.project, execution.id)
            .await?
            .into_iter()
            .find(|r| r.step_id == step.id)
            .unwrap_or_else(|| new_record(execution, step, now));
        record.status = StepStatus::Completed;
        record.completed_at = Some(now);
        record.output = Some(match outcome {
            Some(WaitOutcome::Event) => json!({"outcome": "EVENT"}),
            Some(WaitOutcome::Timeout) => json!({"outcome": "TIMEOUT"}),
            None => json!({"waitedUntil": now}),
        });
        move_on(&mut after, step, graph, None, outcome, now);
        // Saved or not (another worker moved it first), the next round reads what is there.
        self.store
            .executions()
            .save(
                job.project,
                execution,
                version,
                &after,
                Some((place, &record)),
            )
            .await?;
        Ok(Progress::Again)
    }

    /// A RUNNING execution: runs its current step and records it with the next state.
    async fn run_step(
        &self,
        job: &Job,
        execution: &Execution,
        version: u64,
        graph: &Graph,
        now: Timestamp,
    ) -> Result<Progress, StoreError> {
        let Some(step) = execution.current_step_id.and_then(|id| graph.step(id)) else {
            return self
                .end(
                    job.project,
                    execution,
                    version,
                    None,
                    ExecutionStatus::Failed,
                    Some("STEP_DELETED".into()),
                    now,
                )
                .await;
        };
        let project = match self.store.projects().get(job.project).await? {
            Some(p) if !p.disabled => p,
            _ => {
                return self
                    .end(
                        job.project,
                        execution,
                        version,
                        Some(step),
                        ExecutionStatus::Failed,
                        Some("PROJECT_DISABLED".into()),
                        now,
                    )
                    .await
            }
        };
        let Some(contact) = self
            .store
            .contacts()
            .get(job.project, execution.contact_id)
            .await?
        else {
            return self
                .end(
                    job.project,
                    execution,
                    version,
                    Some(step),
                    ExecutionStatus::Cancelled,
                    Some("CONTACT_DELETED".into()),
                    now,
                )
                .await;
        };
        let outcome = self
            .perform(&project, execution, step, &contact, now)
            .await?;
        let mut after = execution.clone();
        after.updated_at = now;
        let mut record = new_record(execution, step, now);
        match outcome {
            Outcome::Next {
                route,
                outcome,
                status,
                output,
            } => {
                record.status = status;
                record.completed_at = Some(now);
                record.output = output;
                after.attempts = 0;
                after.steps_run += 1;
                move_on(&mut after, step, graph, route.as_deref(), outcome, now);
            }
            Outcome::Wait { record: waiting } => {
                record = waiting;
                after.status = ExecutionStatus::Waiting;
                after.steps_run += 1;
                after.wait = wait_of(step, now);
            }
            Outcome::Retry { delay, output } => {
                after.attempts += 1;
                let saved = self
                    .store
                    .executions()
                    .save(job.project, execution, version, &after, None)
                    .await?;
                if saved {
                    tracing::info!(execution = %execution.id, ?output, "webhook step retried later");
                    self.queue
                        .send(&job_of(job, None).body(), delay)
                        .await
                        .map_err(|e| StoreError::Unavailable(format!("workflow queue: {e}")))?;
                }
                return Ok(Progress::Stop);
            }
            Outcome::End {
                status,
                reason,
                step: step_status,
                output,
                error,
            } => {
                record.status = step_status;
                record.completed_at = Some(now);
                record.output = output;
                record.error = error;
                after.steps_run += 1;
                after.end(status, reason, now);
            }
        }
        self.store
            .executions()
            .save(
                job.project,
                execution,
                version,
                &after,
                Some((execution.steps_run, &record)),
            )
            .await?;
        Ok(Progress::Again)
    }

    /// Ends an execution without running its step (the step is gone, the project disabled, the
    /// contact deleted), recording the step as failed or skipped when there is one.
    #[allow(clippy::too_many_arguments)]
    async fn end(
        &self,
        project: Uuid,
        execution: &Execution,
        version: u64,
        step: Option<&Step>,
        status: ExecutionStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Progress, StoreError> {
        let mut after = execution.clone();
        let record = step.map(|step| {
            let mut record = new_record(execution, step, now);
            record.status = if status == ExecutionStatus::Failed {
                StepStatus::Failed
            } else {
                StepStatus::Skipped
            };
            record.error = reason.clone();
            record.completed_at = Some(now);
            record
        });
        if record.is_some() {
            after.steps_run += 1;
        }
        after.end(status, reason, now);
        let place = execution.steps_run;
        self.store
            .executions()
            .save(
                project,
                execution,
                version,
                &after,
                record.as_ref().map(|r| (place, r)),
            )
            .await?;
        Ok(Progress::Again)
    }

    /// What the step does.
    async fn perform(
        &self,
        project: &Project,
        execution: &Execution,
        step: &Step,
        contact: &Contact,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let config = match parse_config(step.step_type, &step.config, "config", &|_| Ok(())) {
            Ok(config) => config,
            Err(_) => {
                return Ok(Outcome::fail(
                    "INVALID_CONFIG: the step's config no longer parses",
                ))
            }
        };
        Ok(match config {
            StepConfig::Trigger => Outcome::plain(None),
            StepConfig::SendEmail { recipient } => {
                self.send_email(project, execution, step, contact, &recipient)
                    .await?
            }
            StepConfig::Delay { .. } => Outcome::Wait {
                record: StepExecution {
                    status: StepStatus::Scheduled,
                    scheduled_for: wait_of(step, now)
                        .and_then(|w| w.due_ms())
                        .and_then(Timestamp::from_millis),
                    ..new_record(execution, step, now)
                },
            },
            StepConfig::WaitForEvent { .. } => Outcome::Wait {
                record: StepExecution {
                    status: StepStatus::Waiting,
                    scheduled_for: wait_of(step, now)
                        .and_then(|w| w.due_ms())
                        .and_then(Timestamp::from_millis),
                    ..new_record(execution, step, now)
                },
            },
            StepConfig::Condition(condition) => {
                let branch = condition.route(contact, &execution.context, now.unix_millis());
                Outcome::Next {
                    output: Some(json!({ "branch": branch })),
                    route: Some(branch),
                    outcome: None,
                    status: StepStatus::Completed,
                }
            }
            StepConfig::Webhook(config) => {
                let name = self
                    .store
                    .workflows()
                    .get(project.id, execution.workflow_id)
                    .await?
                    .map(|(r, _)| r.workflow.name)
                    .unwrap_or_default();
                let key = step_execution_id(execution, step.id).to_string();
                let input = WebhookStepInput {
                    config: &config,
                    contact,
                    context: &execution.context,
                    project_language: &project.language,
                    workflow_id: execution.workflow_id,
                    workflow_name: &name,
                    execution_id: execution.id,
                    idempotency_key: &key,
                    now,
                };
                match webhook_step::run(&input, execution.attempts, self.allow_private_webhooks)
                    .await
                {
                    WebhookStepResult::Succeeded { output } => Outcome::plain(Some(output)),
                    WebhookStepResult::RetryAfter { delay, output } => {
                        Outcome::Retry { delay, output }
                    }
                    WebhookStepResult::Failed { output, error } => Outcome::End {
                        status: ExecutionStatus::Failed,
                        reason: Some(error.clone()),
                        step: StepStatus::Failed,
                        output: Some(output),
                        error: Some(error),
                    },
                }
            }
            StepConfig::UpdateContact {
                updates,
                subscription,
            } => {
                self.update_contact(project, contact, &updates, subscription)
                    .await?
            }
            StepConfig::Exit { reason } => Outcome::End {
                status: ExecutionStatus::Exited,
                reason,
                step: StepStatus::Completed,
                output: None,
                error: None,
            },
        })
    }

    /// SEND_EMAIL: the step's template to the contact (or a custom address), through the shared
    /// accept step at workflow priority, under an id derived from execution and step.
    async fn send_email(
        &self,
        project: &Project,
        execution: &Execution,
        step: &Step,
        contact: &Contact,
        recipient: &EmailRecipient,
    ) -> Result<Outcome, StoreError> {
        let Some(template_id) = step.template_id else {
            return Ok(Outcome::fail("TEMPLATE_REQUIRED: the step has no template"));
        };
        let Some(template) = self.store.templates().get(project.id, template_id).await? else {
            return Ok(Outcome::fail(
                "TEMPLATE_NOT_FOUND: the step's template was deleted",
            ));
        };
        let marketing = template.template_type != TemplateType::Transactional;
        let to = match recipient {
            EmailRecipient::Contact => RecipientContact::Existing(contact.clone()),
            EmailRecipient::Custom(raw) => {
                let address = if plunk_domain::workflow::has_liquid(raw) {
                    let context =
                        RenderContext::for_contact(contact, &Map::new(), &project.language)
                            .with_event(execution.context.clone());
                    render(raw, &context)
                        .ok()
                        .and_then(|s| EmailAddress::parse(s.trim()).ok())
                } else {
                    EmailAddress::parse(raw).ok()
                };
                match address {
                    Some(address) => RecipientContact::Address(address),
                    None => {
                        return Ok(Outcome::fail(
                            "INVALID_RECIPIENT: customEmail is not an email address",
                        ))
                    }
                }
            }
        };
        let email_id = step_execution_id(execution, step.id);
        let message = Message {
            subject: template.subject.clone(),
            body: template.body.clone(),
            from: template.from.clone(),
            from_name: template
                .from_name
                .clone()
                .unwrap_or_else(|| project.name.clone()),
            reply_to: template.reply_to.as_ref().map(|r| r.to_string()),
            headers: Vec::new(),
            attachments: Vec::new(),
            one_shot: Map::new(),
            event: execution.context.clone(),
            template: Some((template.id, template.template_type)),
            marketing,
            tracking: match project.tracking {
                Tracking::Enabled => true,
                Tracking::Disabled => false,
                Tracking::MarketingOnly => marketing,
            },
            test: false,
            origin: Origin::Workflow {
                workflow_id: execution.workflow_id,
                execution_id: execution.id,
            },
            class: SendClass::Workflow,
            content_root: email_id,
            content_of_campaign: None,
        };
        let recipients = vec![Recipient {
            email_id,
            contact: to,
        }];
        match self.acceptor.accept(project.id, &message, recipients).await {
            Ok(accepted) => {
                let status = accepted
                    .first()
                    .map(|a| a.status.as_str())
                    .unwrap_or("PENDING");
                Ok(Outcome::plain(Some(
                    json!({ "emailId": email_id, "status": status }),
                )))
            }
            Err(AcceptError::Unsubscribed(_)) => Ok(Outcome::Next {
                route: None,
                outcome: None,
                status: StepStatus::Skipped,
                output: Some(json!({ "skipped": "CONTACT_UNSUBSCRIBED" })),
            }),
            Err(AcceptError::Store(e)) => Err(e),
            Err(AcceptError::BlobUnavailable { what }) => {
                Err(StoreError::Unavailable(format!("{what} storage")))
            }
            Err(AcceptError::ContactChanged) => {
                Err(StoreError::Unavailable("a contact changed; retried".into()))
            }
            Err(e) => Ok(Outcome::fail(format!("SEND_FAILED: {e}"))),
        }
    }

    /// UPDATE_CONTACT: the contacts rules, the subscription change attributed to the workflow.
    async fn update_contact(
        &self,
        project: &Project,
        contact: &Contact,
        updates: &Map<String, Value>,
        subscription: SubscriptionAction,
    ) -> Result<Outcome, StoreError> {
        let change = match DataChange::parse(updates) {
            Ok(change) => change,
            Err(errors) => {
                let reason = errors
                    .first()
                    .map(|e| format!("INVALID_DATA: {}: {}", e.field, e.message))
                    .unwrap_or_else(|| "INVALID_DATA".into());
                return Ok(Outcome::fail(reason));
            }
        };
        let subscribed = match subscription {
            SubscriptionAction::None => None,
            SubscriptionAction::Subscribe => Some(true),
            SubscriptionAction::Unsubscribe => Some(false),
        };
        let data = if change.is_empty() {
            Patch::Absent
        } else {
            Patch::Set(&change)
        };
        match self
            .store
            .contacts()
            .patch(
                project.id,
                contact.id,
                None,
                subscribed,
                data,
                SubscriptionSource::Workflow,
            )
            .await
        {
            Ok(updated) => Ok(Outcome::plain(Some(json!({
                "subscribed": updated.subscribed,
                "updated": updates.keys().collect::<Vec<_>>(),
            })))),
            Err(plunk_store::repo::contacts::ContactError::Store(e)) => Err(e),
            Err(e) => Ok(Outcome::fail(format!("UPDATE_FAILED: {e}"))),
        }
    }
}

/// How long a received workflow message stays hidden: a message runs at most
/// [`MAX_STEPS_PER_MESSAGE`] steps, each well under a few seconds (a WEBHOOK attempt is at most
/// 10 s).
pub const VISIBILITY: Duration = Duration::from_secs(300);

/// The embedded queue's name, and its dead-letter queue's.
const EMBEDDED_QUEUE: &str = "workflows";
const EMBEDDED_DEAD_LETTER_QUEUE: &str = "workflows-dlq";

/// The embedded workflow queue in the SQLite file `path` (the local server's `queues.db`), with
/// its dead-letter queue after 10 receives, like the deployed SQS queue.
pub fn embedded_queue(
    path: &std::path::Path,
) -> Result<Arc<dyn Queue>, plunk_messaging::queue::QueueError> {
    let redrive = plunk_messaging::queue::embedded::RedrivePolicy {
        dead_letter_queue: EMBEDDED_DEAD_LETTER_QUEUE.into(),
        max_receive_count: 10,
    };
    Ok(Arc::new(
        plunk_messaging::queue::embedded::EmbeddedQueue::open(path, EMBEDDED_QUEUE, redrive)?,
    ))
}

/// How many messages the local loop works at once.
const LOCAL_IN_FLIGHT: usize = 8;

/// The local loop over the workflow queue: receive, advance, delete; a message whose advance
/// failed comes back after its visibility timeout.
pub async fn run_queue(engine: Engine) {
    let places = Arc::new(tokio::sync::Semaphore::new(LOCAL_IN_FLIGHT));
    loop {
        let free = places.available_permits().clamp(1, 10);
        let messages = match engine.queue.receive(free, VISIBILITY, Duration::ZERO).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "workflow queue receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for message in messages {
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                engine.handle(&message.body, &message.receipt).await;
                drop(place);
            });
        }
    }
}

impl Engine {
    /// Works one received message ([`Self::work`]) and deletes it unless it must come back.
    pub async fn handle(&self, body: &str, receipt: &str) -> bool {
        let done = match self.work(body).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "workflow message failed; retried");
                false
            }
        };
        if done {
            if let Err(e) = self.queue.delete(receipt).await {
                tracing::warn!(error = %e, "could not delete a workflow message");
            }
        }
        done
    }
}

/// Whether [`Engine::advance`] goes round again.
enum Progress {
    Again,
    Stop,
}

fn job_of(job: &Job, event: Option<ArrivedEvent>) -> Job {
    Job {
        event,
        ..job.clone()
    }
}

/// A new record of `step` in `execution`, RUNNING since `now`.
fn new_record(execution: &Execution, step: &Step, now: Timestamp) -> StepExecution {
    StepExecution {
        id: step_execution_id(execution, step.id),
        step_id: step.id,
        step_type: step.step_type,
        status: StepStatus::Running,
        scheduled_for: None,
        started_at: now,
        completed_at: None,
        output: None,
        error: None,
    }
}

/// What a DELAY or WAIT_FOR_EVENT step begun at `now` waits for. Its end is rounded up to a
/// whole minute: timers fire in the scheduler's tick of their minute, so a DELAY of one minute
/// lasts between one and two minutes, never less than asked.
fn wait_of(step: &Step, now: Timestamp) -> Option<Wait> {
    let config = parse_config(step.step_type, &step.config, "config", &|_| Ok(())).ok()?;
    let now_ms = now.unix_millis();
    let end = |after_ms: i64| {
        let at = now_ms.saturating_add(after_ms);
        at.saturating_add(59_999)
            .div_euclid(60_000)
            .saturating_mul(60_000)
    };
    match config {
        StepConfig::Delay { .. } => Some(Wait::Delay {
            step_id: step.id,
            due_ms: end(config.delay_ms()?),
        }),
        StepConfig::WaitForEvent { ref event_name, .. } => Some(Wait::Event {
            step_id: step.id,
            event_name: event_name.clone(),
            since_ms: now_ms,
            timeout_ms: config.timeout_ms().map(end),
        }),
        _ => None,
    }
}

/// Moves `after` past `step`: to the step the transition leads to (RUNNING), or COMPLETED when
/// there is no way on (a WAIT_FOR_EVENT timeout without a TIMEOUT route included).
fn move_on(
    after: &mut Execution,
    step: &Step,
    graph: &Graph,
    route: Option<&str>,
    outcome: Option<WaitOutcome>,
    now: Timestamp,
) {
    after.updated_at = now;
    match next_step(step, &graph.transitions, route, outcome) {
        Some(next) => {
            after.status = ExecutionStatus::Running;
            after.current_step_id = Some(next);
        }
        None => after.end(ExecutionStatus::Completed, None, now),
    }
}
