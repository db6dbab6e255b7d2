//! Workflows (workflows.md): a trigger and a graph of steps joined by transitions, run once per
//! contact. This module holds the records as the API shows them, the typed config of each step
//! type ([`config`]) and the rules of the graph ([`graph`]); storing and running them is
//! elsewhere.
//!
//! | Module | What it holds |
//! |---|---|
//! | `config` | each step type's config: parsing with field paths, and the typed result |
//! | `config::condition` | `CONDITION` steps: their filters and routing |
//! | `config::webhook` | `WEBHOOK` steps: URL, method, headers and body |
//! | `graph` | what transitions may exist, enabling, auto-connecting, following, splicing |
//! | `execution` | executions and the records of the steps they ran |

pub mod config;
pub mod execution;
pub mod graph;

pub use config::{
    has_liquid, parse_config, ConditionBranch, ConditionConfig, DelayUnit, EmailRecipient,
    StepConfig, SubscriptionAction, WebhookConfig, WebhookMethod,
};
pub use graph::{
    auto_connect_source, check_add_step, check_config_change, check_delete_step, check_enable,
    check_insert_step, check_transition, next_step, splice_plan, SplicePlan,
};

use crate::event::event_name_problem;
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use uuid::Uuid;

/// Most steps in one workflow, the trigger included.
pub const MAX_STEPS: usize = 100;
/// Largest serialised step `config`.
pub const MAX_CONFIG_BYTES: usize = 32 * 1024;
/// Longest `DELAY`, in days.
pub const MAX_DELAY_DAYS: u32 = 365;
/// Longest `WAIT_FOR_EVENT` timeout: 365 days, in seconds.
pub const MAX_WAIT_TIMEOUT_SECONDS: u32 = 31_536_000;
/// Longest event name a trigger or a `WAIT_FOR_EVENT` step waits for (the length of any
/// event name).
pub const MAX_EVENT_NAME_CHARS: usize = crate::event::MAX_EVENT_NAME_CHARS;
/// Longest workflow or step `name`, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest workflow `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepType {
    /// Where every execution starts; exactly one per workflow, created with it.
    Trigger,
    /// Sends the step's template.
    SendEmail,
    /// Waits a fixed time.
    Delay,
    /// Waits for an event of the contact, optionally with a timeout.
    WaitForEvent,
    /// Routes by a filter: yes/no, or one of several branches.
    Condition,
    /// Calls a URL.
    Webhook,
    /// Changes the contact's data or subscription.
    UpdateContact,
    /// Ends the execution.
    Exit,
}

impl StepType {
    /// Every type, in the order of the spec.
    pub const ALL: [StepType; 8] = [
        StepType::Trigger,
        StepType::SendEmail,
        StepType::Delay,
        StepType::WaitForEvent,
        StepType::Condition,
        StepType::Webhook,
        StepType::UpdateContact,
        StepType::Exit,
    ];

    /// The wire form, e.g. `SEND_EMAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Trigger => "TRIGGER",
            StepType::SendEmail => "SEND_EMAIL",
            StepType::Delay => "DELAY",
            StepType::WaitForEvent => "WAIT_FOR_EVENT",
            StepType::Condition => "CONDITION",
            StepType::Webhook => "WEBHOOK",
            StepType::UpdateContact => "UPDATE_CONTACT",
            StepType::Exit => "EXIT",
        }
    }

    /// Parses the wire form (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// Whether the step leaves by one plain transition (no condition, no wait outcome): every
    /// type but `CONDITION`, `WAIT_FOR_EVENT` (which leave by named slots) and `EXIT` (which
    /// does not leave).
    pub fn allows_plain_outgoing(self) -> bool {
        matches!(
            self,
            StepType::Trigger
                | StepType::SendEmail
                | StepType::Delay
                | StepType::Webhook
                | StepType::UpdateContact
        )
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a `WAIT_FOR_EVENT` step ended, which names the transition it leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WaitOutcome {
    /// The awaited event arrived.
    Event,
    /// The timeout passed first.
    Timeout,
}

impl WaitOutcome {
    /// Both outcomes.
    pub const ALL: [WaitOutcome; 2] = [WaitOutcome::Event, WaitOutcome::Timeout];

    /// The wire form, `EVENT` or `TIMEOUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Event => "EVENT",
            WaitOutcome::Timeout => "TIMEOUT",
        }
    }

    /// Parses the wire form (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// What starts a workflow's executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerType {
    /// An event of the name in the trigger config.
    #[default]
    Event,
    /// Only an explicit start through the API.
    Manual,
}

impl TriggerType {
    /// Every supported type.
    pub const ALL: [TriggerType; 2] = [TriggerType::Event, TriggerType::Manual];

    /// The wire form, `EVENT` or `MANUAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Event => "EVENT",
            TriggerType::Manual => "MANUAL",
        }
    }

    /// Parses the wire form (case-sensitive); `SCHEDULE` is not supported and so `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// The trigger config of an `EVENT` workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerConfig {
    pub event_name: String,
}

/// Where the editor draws a step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// The branch a transition leaving a `CONDITION` step stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BranchCondition {
    pub branch: String,
}

/// A step of a workflow, with its config as stored (parse it with [`parse_config`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: Uuid,
    pub workflow_id: Uuid,
    #[serde(rename = "type")]
    pub step_type: StepType,
    pub name: String,
    pub position: Position,
    pub config: Value,
    pub template_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A directed edge between two steps of one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub from_step_id: Uuid,
    pub to_step_id: Uuid,
    pub condition: Option<BranchCondition>,
    pub wait_outcome: Option<WaitOutcome>,
    pub priority: u32,
    pub created_at: Timestamp,
}

/// A workflow of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub trigger_type: TriggerType,
    pub trigger_config: Option<TriggerConfig>,
    pub allow_reentry: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Parses a step `position`, the member at `path`: `{x: number, y: number}`, both finite.
pub fn parse_position(value: &Value, path: &str) -> Result<Position, Vec<FieldError>> {
    let Value::Object(object) = value else {
        let (code, message) = if value.is_null() {
            (FieldCode::Required, "Required")
        } else {
            (FieldCode::InvalidType, "Expected an object {x, y}")
        };
        return Err(vec![FieldError::new(path, code, message)]);
    };
    let mut errors = Vec::new();
    let mut coordinate = |name: &str| match object.get(name) {
        Some(Value::Number(n)) => match n.as_f64().filter(|v| v.is_finite()) {
            Some(v) => Some(v),
            None => {
                errors.push(FieldError::new(
                    format!("{path}.{name}"),
                    FieldCode::InvalidType,
                    "Expected a finite number",
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                format!("{path}.{name}"),
                FieldCode::Required,
                "Required",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.{name}"),
                FieldCode::InvalidType,
                "Expected a number",
            ));
            None
        }
    };
    let (x, y) = (coordinate("x"), coordinate("y"));
    match (x, y) {
        (Some(x), Some(y)) => Ok(Position { x, y }),
        _ => Err(errors),
    }
}

/// Parses a workflow's `triggerType`, the member at `path`: `EVENT` (the default when absent or
/// `null`) or `MANUAL`; `SCHEDULE` is refused as not supported.
pub fn parse_trigger_type(value: Option<&Value>, path: &str) -> Result<TriggerType, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(TriggerType::default()),
        Some(Value::String(raw)) => TriggerType::parse(raw).ok_or_else(|| {
            let message = if raw == "SCHEDULE" {
                "SCHEDULE triggers are not supported; use EVENT or MANUAL"
            } else {
                "Expected EVENT or MANUAL"
            };
            FieldError::new(path, FieldCode::InvalidEnumValue, message)
        }),
        Some(_) => Err(FieldError::new(
            path,
            FieldCode::InvalidType,
            "Expected a string",
        )),
    }
}

/// Parses a workflow's `triggerConfig`, the member at `path`, for `trigger_type`: `EVENT` needs
/// `{eventName}` (trimmed, a valid event name); `MANUAL` has none, so whatever was sent is
/// dropped and the result is `None`.
pub fn parse_trigger_config(
    trigger_type: TriggerType,
    value: Option<&Value>,
    path: &str,
) -> Result<Option<TriggerConfig>, Vec<FieldError>> {
    if trigger_type == TriggerType::Manual {
        return Ok(None);
    }
    let object = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => {
            return Err(vec![FieldError::new(
                path,
                FieldCode::Required,
                "An EVENT trigger needs {eventName}",
            )])
        }
        Some(_) => {
            return Err(vec![FieldError::new(
                path,
                FieldCode::InvalidType,
                "Expected an object",
            )])
        }
    };
    let name_path = format!("{path}.eventName");
    event_name(object.get("eventName"), &name_path)
        .map(|event_name| Some(TriggerConfig { event_name }))
        .map_err(|e| vec![e])
}

/// An event name a workflow triggers on or waits for, the member at `path`: a string, trimmed,
/// 1–255 characters without control characters or `/` (the rules of tracked names).
pub fn event_name(value: Option<&Value>, path: &str) -> Result<String, FieldError> {
    let raw = match value {
        Some(Value::String(raw)) => raw.trim(),
        None | Some(Value::Null) => {
            return Err(FieldError::new(path, FieldCode::Required, "Required"))
        }
        Some(_) => {
            return Err(FieldError::new(
                path,
                FieldCode::InvalidType,
                "Expected a string",
            ))
        }
    };
    let chars = raw.chars().count();
    let code = if chars == 0 {
        FieldCode::TooSmall
    } else if chars > MAX_EVENT_NAME_CHARS {
        FieldCode::TooBig
    } else {
        FieldCode::InvalidString
    };
    match event_name_problem(raw) {
        Some(problem) => Err(FieldError::new(path, code, problem)),
        None => Ok(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests;
