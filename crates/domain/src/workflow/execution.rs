//! Executions (workflows.md §1, §4): one contact's way through a workflow, and the record of each
//! step it ran.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::StepType;

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Processing steps.
    Running,
    /// In a DELAY or a WAIT_FOR_EVENT.
    Waiting,
    /// Reached a step with no way on.
    Completed,
    /// Reached an EXIT step.
    Exited,
    /// A step failed for good.
    Failed,
    /// Cancelled through the API, or its contact was deleted.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in the spec's order.
    pub const ALL: [ExecutionStatus; 6] = [
        ExecutionStatus::Running,
        ExecutionStatus::Waiting,
        ExecutionStatus::Completed,
        ExecutionStatus::Exited,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
    ];

    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Waiting => "WAITING",
            ExecutionStatus::Completed => "COMPLETED",
            ExecutionStatus::Exited => "EXITED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status named `raw`, exactly as the API writes it.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// RUNNING or WAITING: the execution still has steps to run.
    pub fn is_active(self) -> bool {
        matches!(self, ExecutionStatus::Running | ExecutionStatus::Waiting)
    }
}

/// What a WAITING execution waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Wait {
    /// A DELAY step, until `due` (Unix milliseconds).
    Delay { step_id: Uuid, due_ms: i64 },
    /// A WAIT_FOR_EVENT step: an event `event_name` of the contact created at or after
    /// `since_ms`, or the timeout at `timeout_ms`.
    Event {
        step_id: Uuid,
        event_name: String,
        since_ms: i64,
        timeout_ms: Option<i64>,
    },
}

impl Wait {
    /// The step that waits.
    pub fn step_id(&self) -> Uuid {
        match self {
            Wait::Delay { step_id, .. } | Wait::Event { step_id, .. } => *step_id,
        }
    }

    /// When the wait ends by time alone, if it does.
    pub fn due_ms(&self) -> Option<i64> {
        match self {
            Wait::Delay { due_ms, .. } => Some(*due_ms),
            Wait::Event { timeout_ms, .. } => *timeout_ms,
        }
    }
}

/// One contact's way through a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub contact_id: Uuid,
    pub status: ExecutionStatus,
    /// The step being run or waited in; the last step run once ended.
    pub current_step_id: Option<Uuid>,
    pub exit_reason: Option<String>,
    /// The trigger's event data, with what WAIT_FOR_EVENT steps merged in.
    pub context: Map<String, Value>,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Steps run so far: the next step record's place.
    #[serde(default)]
    pub steps_run: u32,
    /// What a WAITING execution waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// Attempts made of the current step (WEBHOOK retries).
    #[serde(default)]
    pub attempts: u32,
}

impl Execution {
    /// A new execution at the workflow's TRIGGER step.
    pub fn start(
        id: Uuid,
        workflow_id: Uuid,
        contact_id: Uuid,
        trigger_step: Uuid,
        context: Map<String, Value>,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            workflow_id,
            contact_id,
            status: ExecutionStatus::Running,
            current_step_id: Some(trigger_step),
            exit_reason: None,
            context,
            started_at: now,
            completed_at: None,
            updated_at: now,
            steps_run: 0,
            wait: None,
            attempts: 0,
        }
    }

    /// Ends the execution in `status` (not an active one).
    pub fn end(&mut self, status: ExecutionStatus, reason: Option<String>, now: Timestamp) {
        self.status = status;
        self.exit_reason = reason;
        self.completed_at = Some(now);
        self.updated_at = now;
        self.wait = None;
    }
}

/// How a step of an execution went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Pending,
    Scheduled,
    Waiting,
    Running,
    Completed,
    Skipped,
    Failed,
}

/// The record of one step an execution ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepExecution {
    pub id: Uuid,
    pub step_id: Uuid,
    #[serde(rename = "type")]
    pub step_type: StepType,
    pub status: StepStatus,
    pub scheduled_for: Option<Timestamp>,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// The id of an execution started by the event `event` (created at `event_at`) in `workflow`:
/// one event starts at most one execution per workflow, however often it is delivered.
pub fn execution_id_for_event(workflow: Uuid, event: Uuid, event_at: Timestamp) -> Uuid {
    crate::id::derived_id(
        event_at.unix_millis().max(0) as u64,
        &[b"workflow-execution", workflow.as_bytes(), event.as_bytes()],
    )
}

/// The id of the record of `step` in `execution` (a step runs at most once per execution: the
/// graph has no cycles), and of what the step makes (its email): the same on every retry.
pub fn step_execution_id(execution: &Execution, step: Uuid) -> Uuid {
    crate::id::derived_id(
        execution.started_at.unix_millis().max(0) as u64,
        &[b"workflow-step", execution.id.as_bytes(), step.as_bytes()],
    )
}
