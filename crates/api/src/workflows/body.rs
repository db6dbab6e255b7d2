//! Reading the bodies of `POST /workflows` and `PATCH /workflows/:id` (workflows.md §1, §5).

use plunk_domain::validation::{Fields, Patch};
use plunk_domain::workflow::{
    self, TriggerConfig, TriggerType, Workflow, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS,
};
use plunk_domain::{FieldCode, FieldError, Timestamp};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /workflows`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct CreateBody {
    /// 1–100 characters.
    name: String,
    #[schema(nullable = true)]
    description: Option<String>,
    /// The event that starts executions (1–255 characters, trimmed).
    event_name: String,
    allow_reentry: Option<bool>,
    enabled: Option<bool>,
}

/// Body of `PATCH /workflows/:id`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct UpdateBody {
    name: Option<String>,
    #[schema(nullable = true)]
    description: Option<String>,
    enabled: Option<bool>,
    allow_reentry: Option<bool>,
    /// `EVENT` or `MANUAL` (`SCHEDULE` is not supported yet).
    trigger_type: Option<String>,
    /// `{eventName}` for EVENT, null for MANUAL.
    #[schema(value_type = Option<Object>, nullable = true)]
    trigger_config: Option<Value>,
}

/// A new workflow from a create body: EVENT-triggered by `eventName`.
pub fn read_create(
    body: &Map<String, Value>,
    id: Uuid,
    now: Timestamp,
) -> Result<Workflow, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let name = fields.required_string("name", 1, MAX_NAME_CHARS);
    let description = description(&mut fields);
    let event_name = match workflow::event_name(body.get("eventName"), "eventName") {
        Ok(name) => Some(name),
        Err(e) => {
            fields.push(e);
            None
        }
    };
    let allow_reentry = fields.optional_bool("allowReentry");
    let enabled = fields.optional_bool("enabled");
    fields.finish()?;
    let (Some(name), Some(event_name)) = (name, event_name) else {
        return Err(vec![FieldError::new(
            "",
            FieldCode::Required,
            "name and eventName are required",
        )]);
    };
    Ok(Workflow {
        id,
        name: name.to_owned(),
        description: match description {
            Patch::Set(d) => Some(d),
            _ => None,
        },
        enabled: enabled.unwrap_or(false),
        trigger_type: TriggerType::Event,
        trigger_config: Some(TriggerConfig { event_name }),
        allow_reentry: allow_reentry.unwrap_or(false),
        created_at: now,
        updated_at: now,
    })
}

/// What a PATCH body changes.
pub struct Changes {
    pub name: Option<String>,
    pub description: Patch<String>,
    pub enabled: Option<bool>,
    pub allow_reentry: Option<bool>,
    pub trigger_type: Option<TriggerType>,
    pub trigger_config: Patch<String>,
}

/// The changes of a PATCH body.
pub fn read_update(body: &Map<String, Value>) -> Result<Changes, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let name = fields.optional_string("name", 1, MAX_NAME_CHARS);
    let description = description(&mut fields);
    let enabled = fields.optional_bool("enabled");
    let allow_reentry = fields.optional_bool("allowReentry");
    let trigger_type = match body.get("triggerType") {
        None | Some(Value::Null) => None,
        raw => match workflow::parse_trigger_type(raw, "triggerType") {
            Ok(t) => Some(t),
            Err(e) => {
                fields.push(e);
                None
            }
        },
    };
    let trigger_config = match fields.nullable_object("triggerConfig") {
        Patch::Absent => Patch::Absent,
        Patch::Null => Patch::Null,
        Patch::Set(config) => {
            match workflow::event_name(config.get("eventName"), "triggerConfig.eventName") {
                Ok(name) => Patch::Set(name),
                Err(e) => {
                    fields.push(e);
                    Patch::Absent
                }
            }
        }
    };
    fields.finish()?;
    Ok(Changes {
        name: name.map(str::to_owned),
        description,
        enabled,
        allow_reentry,
        trigger_type,
        trigger_config,
    })
}

/// What [`apply_trigger`] changed.
pub struct TriggerChange {
    /// The trigger type or configuration changed.
    pub changed: bool,
    /// The trigger's event name changed (or went away).
    pub event_name_changed: bool,
}

/// Applies a trigger change to `workflow`: EVENT needs an event name (the one it has, or the
/// new `triggerConfig`), MANUAL has no configuration.
pub fn apply_trigger(
    workflow: &mut Workflow,
    trigger_type: Option<TriggerType>,
    trigger_config: Patch<String>,
) -> Result<TriggerChange, Vec<FieldError>> {
    let before = (workflow.trigger_type, workflow.trigger_config.clone());
    let new_type = trigger_type.unwrap_or(workflow.trigger_type);
    let config = match (new_type, trigger_config) {
        (TriggerType::Manual, Patch::Set(_)) => {
            return Err(vec![FieldError::new(
                "triggerConfig",
                FieldCode::Custom,
                "A MANUAL workflow has no trigger configuration; send null",
            )])
        }
        (TriggerType::Manual, _) => None,
        (TriggerType::Event, Patch::Set(event_name)) => Some(TriggerConfig { event_name }),
        (TriggerType::Event, Patch::Null) => {
            return Err(vec![FieldError::new(
                "triggerConfig",
                FieldCode::Required,
                "An EVENT workflow needs {eventName}",
            )])
        }
        (TriggerType::Event, Patch::Absent) => match &workflow.trigger_config {
            Some(config) => Some(config.clone()),
            None => {
                return Err(vec![FieldError::new(
                    "triggerConfig",
                    FieldCode::Required,
                    "An EVENT workflow needs {eventName}",
                )])
            }
        },
    };
    workflow.trigger_type = new_type;
    workflow.trigger_config = config;
    let event_name_changed = before.1.as_ref().map(|c| &c.event_name)
        != workflow.trigger_config.as_ref().map(|c| &c.event_name);
    Ok(TriggerChange {
        changed: before.0 != workflow.trigger_type || before.1 != workflow.trigger_config,
        event_name_changed,
    })
}

fn description(fields: &mut Fields) -> Patch<String> {
    match fields.raw("description") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(_) => match fields.optional_string("description", 0, MAX_DESCRIPTION_CHARS) {
            Some(d) => Patch::Set(d.to_owned()),
            None => Patch::Absent,
        },
    }
}
