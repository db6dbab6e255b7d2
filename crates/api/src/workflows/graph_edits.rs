//! The structural edits of a workflow's graph (workflows.md §5 "Steps and transitions"): each
//! reads the workflow and its graph, refuses while executions are active (409
//! `WORKFLOW_LOCKED`), checks the graph rules on the graph as it would be, and writes the change
//! conditional on the workflow's version.

use super::{
    check_template, load, not_found, step_json, transition_json, unlocked, url_check,
    workflow_error, Deleted,
};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use plunk_domain::validation::Fields;
use plunk_domain::workflow::config::parse_config;
use plunk_domain::workflow::{
    graph, parse_position, BranchCondition, Position, Step, StepType, Transition, WaitOutcome,
};
use plunk_domain::{FieldCode, FieldError, Timestamp};
use plunk_http_kit::{ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject};
use plunk_store::repo::workflows::{Graph, GraphChange, WorkflowRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest step name.
const MAX_STEP_NAME_CHARS: usize = 100;

fn step_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::WorkflowStepNotFound,
        "No step with this id in the workflow",
    )
}

fn transition_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::WorkflowTransitionNotFound,
        "No transition with this id in the workflow",
    )
}

/// The workflow (unlocked) with its version and graph.
async fn load_for_edit(
    state: &AppState,
    project: Uuid,
    id: Uuid,
) -> Result<(WorkflowRecord, u64, Graph), ApiError> {
    let (record, version) = load(state, project, id).await?;
    unlocked(&record)?;
    let graph = state.store.workflows().graph(project, id).await?;
    Ok((record, version, graph))
}

/// Writes a graph change with the workflow's summary brought up to date.
async fn commit(
    state: &AppState,
    project: Uuid,
    record: &WorkflowRecord,
    version: u64,
    before: &Graph,
    change: &GraphChange,
) -> Result<(), ApiError> {
    let after = apply(before, change);
    let mut updated = record.clone();
    updated.step_count = after.steps.len();
    updated.wait_event_names = after.wait_event_names();
    updated.workflow.updated_at = Timestamp::now();
    // An enabled workflow stays runnable: every edit of its graph passes the full check.
    if updated.workflow.enabled {
        graph::check_enable(&after.steps, &after.transitions, &url_check(state))
            .map_err(ApiError::validation)?;
    }
    state
        .store
        .workflows()
        .save(project, record, &updated, version, Some(before), change)
        .await
        .map_err(workflow_error)?;
    Ok(())
}

/// The graph after `change`.
fn apply(before: &Graph, change: &GraphChange) -> Graph {
    let mut steps: Vec<Step> = before
        .steps
        .iter()
        .filter(|s| !change.delete_steps.iter().any(|d| d.id == s.id))
        .filter(|s| !change.put_steps.iter().any(|p| p.id == s.id))
        .cloned()
        .collect();
    steps.extend(change.put_steps.iter().cloned());
    steps.sort_by_key(|s| (s.created_at, s.id));
    let mut transitions: Vec<Transition> = before
        .transitions
        .iter()
        .filter(|t| !change.delete_transitions.contains(&t.id))
        .filter(|t| !change.put_transitions.iter().any(|p| p.id == t.id))
        .cloned()
        .collect();
    transitions.extend(change.put_transitions.iter().cloned());
    transitions.sort_by_key(|t| (t.created_at, t.id));
    Graph { steps, transitions }
}

/// The fields of a new step (`POST …/steps`, `insert-step`), checked: type (never TRIGGER),
/// name, position, config by type, templateId.
struct NewStep {
    step_type: StepType,
    name: String,
    position: Position,
    config: Value,
    template_id: Option<Uuid>,
}

fn read_new_step(
    state: &AppState,
    body: &Map<String, Value>,
    position_required: bool,
) -> Result<NewStep, ApiError> {
    let mut fields = Fields::new(body);
    let step_type = match body.get("type") {
        Some(Value::String(t)) => match StepType::parse(t) {
            Some(t) => Some(t),
            None => {
                fields.error(
                    "type",
                    FieldCode::InvalidEnumValue,
                    "Expected SEND_EMAIL, DELAY, WAIT_FOR_EVENT, CONDITION, WEBHOOK, UPDATE_CONTACT or EXIT",
                );
                None
            }
        },
        None | Some(Value::Null) => {
            fields.error("type", FieldCode::Required, "Required");
            None
        }
        Some(_) => {
            fields.error("type", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    let name = fields.required_string("name", 1, MAX_STEP_NAME_CHARS);
    let position = match body.get("position") {
        None | Some(Value::Null) if !position_required => Some(Position { x: 0.0, y: 0.0 }),
        None | Some(Value::Null) => {
            fields.error("position", FieldCode::Required, "Required");
            None
        }
        Some(p) => match parse_position(p, "position") {
            Ok(p) => Some(p),
            Err(errors) => {
                errors.into_iter().for_each(|e| fields.push(e));
                None
            }
        },
    };
    let config = body.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(t) = step_type {
        if let Err(errors) = parse_config(t, &config, "config", &url_check(state)) {
            errors.into_iter().for_each(|e| fields.push(e));
        }
    }
    let template_id = template_id(&mut fields, body);
    fields.finish().map_err(ApiError::validation)?;
    match (step_type, name, position) {
        (Some(step_type), Some(name), Some(position)) => Ok(NewStep {
            step_type,
            name: name.to_owned(),
            position,
            config: normalised(config),
            template_id: template_id.flatten(),
        }),
        _ => Err(ApiError::internal(&"validated step lost a member")),
    }
}

/// A config as stored: `null` is `{}`.
fn normalised(config: Value) -> Value {
    if config.is_null() {
        json!({})
    } else {
        config
    }
}

/// `templateId`: absent (`None`), `null` (`Some(None)`) or a UUID.
fn template_id(fields: &mut Fields, body: &Map<String, Value>) -> Option<Option<Uuid>> {
    match body.get("templateId") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => match plunk_domain::id::parse_id(s) {
            Some(id) => Some(Some(id)),
            None => {
                fields.error("templateId", FieldCode::InvalidString, "Expected a UUID");
                None
            }
        },
        Some(_) => {
            fields.error("templateId", FieldCode::InvalidType, "Expected a UUID");
            None
        }
    }
}

impl NewStep {
    fn into_step(self, workflow: Uuid, now: Timestamp) -> Step {
        Step {
            id: plunk_domain::id::new_id(),
            workflow_id: workflow,
            step_type: self.step_type,
            name: self.name,
            position: self.position,
            config: self.config,
            template_id: self.template_id,
            created_at: now,
            updated_at: now,
        }
    }
}

fn new_transition(
    workflow: Uuid,
    from: Uuid,
    to: Uuid,
    condition: Option<BranchCondition>,
    wait_outcome: Option<WaitOutcome>,
    priority: u32,
    now: Timestamp,
) -> Transition {
    Transition {
        id: plunk_domain::id::new_id(),
        workflow_id: workflow,
        from_step_id: from,
        to_step_id: to,
        condition,
        wait_outcome,
        priority,
        created_at: now,
    }
}

/// The ids of a step path (`/workflows/{id}/steps/{step_id}`).
fn ids(
    path: Result<Path<(String, String)>, PathRejection>,
    second: fn() -> ApiError,
) -> Result<(Uuid, Uuid), ApiError> {
    let Ok(Path((workflow, other))) = path else {
        return Err(not_found());
    };
    let workflow = plunk_domain::id::parse_id(&workflow).ok_or_else(not_found)?;
    let other = plunk_domain::id::parse_id(&other).ok_or_else(second)?;
    Ok((workflow, other))
}

/// Response of `POST …/steps`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedStep {
    #[schema(value_type = Object)]
    step: Value,
    #[schema(value_type = Option<Object>, nullable = true)]
    transition: Option<Value>,
}

/// Add a step; `autoConnect` links it from the latest step that has no way on yet.
#[utoipa::path(post, path = "/workflows/{id}/steps", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "{type, name, position, config, templateId?, autoConnect?}"),
    responses(
        (status = 201, description = "The step and its automatic transition", body = inline(AddedStepEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, TEMPLATE_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn add_step(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<AddedStep>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let new = read_new_step(&state, &body, true)?;
    let auto_connect = match body.get("autoConnect") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::field(FieldError::new(
                "autoConnect",
                FieldCode::InvalidType,
                "Expected a boolean",
            )))
        }
    };
    let (record, version, before) = load_for_edit(&state, project, id).await?;
    graph::check_add_step(&before.steps, new.step_type).map_err(ApiError::validation)?;
    if let Some(template) = new.template_id {
        check_template(&state, project, template).await?;
    }
    let now = Timestamp::now();
    let step = new.into_step(id, now);
    let transition = match auto_connect {
        true => graph::auto_connect_source(&before.steps, &before.transitions)
            .map(|from| new_transition(id, from, step.id, None, None, 0, now)),
        false => None,
    };
    let change = GraphChange {
        put_steps: vec![step.clone()],
        put_transitions: transition.iter().cloned().collect(),
        ..GraphChange::default()
    };
    commit(&state, project, &record, version, &before, &change).await?;
    Ok(Envelope::created(AddedStep {
        step: step_json(&step),
        transition: transition.as_ref().map(transition_json),
    }))
}

/// Change a step: `name` and `position` always; `config` and `templateId` are structural.
#[utoipa::path(patch, path = "/workflows/{id}/steps/{step_id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("step_id" = String, Path, description = "Step id")),
    request_body(content = Object, description = "{name?, position?, config?, templateId?}"),
    responses(
        (status = 200, description = "The step", body = inline(StepEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, WORKFLOW_STEP_NOT_FOUND, TEMPLATE_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn update_step(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Value>, ApiError> {
    let project = auth.project.id;
    let (id, step_id) = ids(path, step_not_found)?;
    let mut fields = Fields::new(&body);
    let name = fields.optional_string("name", 1, MAX_STEP_NAME_CHARS);
    let position = match body.get("position") {
        None | Some(Value::Null) => None,
        Some(p) => match parse_position(p, "position") {
            Ok(p) => Some(p),
            Err(errors) => {
                errors.into_iter().for_each(|e| fields.push(e));
                None
            }
        },
    };
    let new_template = template_id(&mut fields, &body);
    fields.finish().map_err(ApiError::validation)?;
    let config = body.get("config").cloned();
    let structural = config.is_some() || new_template.is_some();
    let (record, version) = load(&state, project, id).await?;
    if structural {
        unlocked(&record)?;
    }
    let before = state.store.workflows().graph(project, id).await?;
    let old = before.step(step_id).ok_or_else(step_not_found)?.clone();
    let mut step = old.clone();
    if let Some(name) = name {
        step.name = name.to_owned();
    }
    if let Some(position) = position {
        step.position = position;
    }
    if let Some(config) = config {
        let parsed = parse_config(step.step_type, &config, "config", &url_check(&state))
            .map_err(ApiError::validation)?;
        graph::check_config_change(&old, &parsed, &before.transitions)
            .map_err(ApiError::validation)?;
        step.config = normalised(config);
    }
    if let Some(template) = new_template {
        if let Some(template) = template {
            check_template(&state, project, template).await?;
        }
        step.template_id = template;
    }
    if step != old {
        step.updated_at = Timestamp::now();
        let change = GraphChange {
            put_steps: vec![step.clone()],
            ..GraphChange::default()
        };
        commit(&state, project, &record, version, &before, &change).await?;
    }
    Ok(Envelope::ok(step_json(&step)))
}

/// `?splice=true|false` of a step deletion.
#[derive(Debug, Deserialize)]
pub struct SpliceQuery {
    splice: Option<String>,
}

/// Delete a step and its transitions; `splice=true` reconnects its predecessor to its successor.
#[utoipa::path(delete, path = "/workflows/{id}/steps/{step_id}", tag = "Workflows",
    params(
        ("id" = String, Path, description = "Workflow id"),
        ("step_id" = String, Path, description = "Step id"),
        ("splice" = Option<bool>, Query, description = "Reconnect the predecessor to the successor"),
    ),
    responses(
        (status = 200, description = "Deleted", body = inline(super::DeletedEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, WORKFLOW_STEP_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove_step(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<SpliceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let project = auth.project.id;
    let (id, step_id) = ids(path, step_not_found)?;
    let splice = match query.ok().and_then(|Query(q)| q.splice) {
        None => false,
        Some(s) if s == "true" => true,
        Some(s) if s == "false" => false,
        Some(_) => {
            return Err(ApiError::field(FieldError::new(
                "splice",
                FieldCode::InvalidType,
                "Expected true or false",
            )))
        }
    };
    let (record, version, before) = load_for_edit(&state, project, id).await?;
    let step = before.step(step_id).ok_or_else(step_not_found)?.clone();
    graph::check_delete_step(&step).map_err(ApiError::validation)?;
    let touching: Vec<Uuid> = before
        .transitions
        .iter()
        .filter(|t| t.from_step_id == step_id || t.to_step_id == step_id)
        .map(|t| t.id)
        .collect();
    let mut change = GraphChange {
        delete_steps: vec![step],
        delete_transitions: touching,
        ..GraphChange::default()
    };
    if splice {
        let plan = graph::splice_plan(&before.steps, &before.transitions, step_id)
            .map_err(ApiError::validation)?;
        if let Some((from, to, condition, wait_outcome)) = plan {
            change.put_transitions.push(new_transition(
                id,
                from,
                to,
                condition,
                wait_outcome,
                0,
                Timestamp::now(),
            ));
        }
    }
    commit(&state, project, &record, version, &before, &change).await?;
    Ok(Envelope::ok(Deleted::of(step_id)))
}

/// Add a transition between two steps of the workflow.
#[utoipa::path(post, path = "/workflows/{id}/transitions", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "{fromStepId, toStepId, condition?, waitOutcome?, priority?}"),
    responses(
        (status = 201, description = "The transition", body = inline(TransitionEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, WORKFLOW_STEP_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn add_transition(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Value>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let mut fields = Fields::new(&body);
    let from = step_ref(&mut fields, &body, "fromStepId");
    let to = step_ref(&mut fields, &body, "toStepId");
    let condition = match fields.nullable_object("condition") {
        plunk_domain::validation::Patch::Set(c) => match c.get("branch") {
            Some(Value::String(b)) if !b.is_empty() && b.chars().count() <= 64 => {
                Some(BranchCondition { branch: b.clone() })
            }
            _ => {
                fields.error(
                    "condition.branch",
                    FieldCode::InvalidString,
                    "Expected a branch name: yes, no, else or a branch id (1–64 characters)",
                );
                None
            }
        },
        _ => None,
    };
    let wait_outcome = match body.get("waitOutcome") {
        None | Some(Value::Null) => None,
        Some(Value::String(o)) if o == "EVENT" => Some(WaitOutcome::Event),
        Some(Value::String(o)) if o == "TIMEOUT" => Some(WaitOutcome::Timeout),
        Some(_) => {
            fields.error(
                "waitOutcome",
                FieldCode::InvalidEnumValue,
                "Expected EVENT or TIMEOUT",
            );
            None
        }
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(p) => match p.as_u64().and_then(|p| u32::try_from(p).ok()) {
            Some(p) => p,
            None => {
                fields.error(
                    "priority",
                    FieldCode::InvalidType,
                    "Expected an integer of at least 0",
                );
                0
            }
        },
    };
    fields.finish().map_err(ApiError::validation)?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::internal(&"validated transition lost a step"));
    };
    let (record, version, before) = load_for_edit(&state, project, id).await?;
    for (field, step) in [("fromStepId", from), ("toStepId", to)] {
        if before.step(step).is_none() {
            return Err(step_not_found().with_details(json!({ "field": field })));
        }
    }
    graph::check_transition(
        &before.steps,
        &before.transitions,
        from,
        to,
        condition.as_ref(),
        wait_outcome,
    )
    .map_err(ApiError::validation)?;
    let transition = new_transition(
        id,
        from,
        to,
        condition,
        wait_outcome,
        priority,
        Timestamp::now(),
    );
    let change = GraphChange {
        put_transitions: vec![transition.clone()],
        ..GraphChange::default()
    };
    commit(&state, project, &record, version, &before, &change).await?;
    Ok(Envelope::created(transition_json(&transition)))
}

/// A required step id of a transition body.
fn step_ref(fields: &mut Fields, body: &Map<String, Value>, name: &str) -> Option<Uuid> {
    match body.get(name) {
        None | Some(Value::Null) => {
            fields.error(name, FieldCode::Required, "Required");
            None
        }
        Some(Value::String(s)) => match plunk_domain::id::parse_id(s) {
            Some(id) => Some(id),
            None => {
                fields.error(name, FieldCode::InvalidString, "Expected a step id (UUID)");
                None
            }
        },
        Some(_) => {
            fields.error(name, FieldCode::InvalidType, "Expected a step id (UUID)");
            None
        }
    }
}

/// Delete a transition.
#[utoipa::path(delete, path = "/workflows/{id}/transitions/{transition_id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("transition_id" = String, Path, description = "Transition id")),
    responses(
        (status = 200, description = "Deleted", body = inline(super::DeletedEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, WORKFLOW_TRANSITION_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove_transition(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let project = auth.project.id;
    let (id, transition_id) = ids(path, transition_not_found)?;
    let (record, version, before) = load_for_edit(&state, project, id).await?;
    before
        .transition(transition_id)
        .ok_or_else(transition_not_found)?;
    let change = GraphChange {
        delete_transitions: vec![transition_id],
        ..GraphChange::default()
    };
    commit(&state, project, &record, version, &before, &change).await?;
    Ok(Envelope::ok(Deleted::of(transition_id)))
}

/// Response of `insert-step`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsertedStep {
    #[schema(value_type = Object)]
    step: Value,
    #[schema(value_type = Vec<Object>)]
    transitions: Vec<Value>,
}

/// Replace the transition A→B by A→new→B.
#[utoipa::path(post, path = "/workflows/{id}/transitions/{transition_id}/insert-step", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("transition_id" = String, Path, description = "Transition id")),
    request_body(content = Object, description = "{type, name, position?, config, templateId?}"),
    responses(
        (status = 201, description = "The new step and its two transitions", body = inline(InsertedStepEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, WORKFLOW_TRANSITION_NOT_FOUND, TEMPLATE_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn insert_step(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<InsertedStep>, ApiError> {
    let project = auth.project.id;
    let (id, transition_id) = ids(path, transition_not_found)?;
    let new = read_new_step(&state, &body, false)?;
    let (record, version, before) = load_for_edit(&state, project, id).await?;
    let original = before
        .transition(transition_id)
        .ok_or_else(transition_not_found)?
        .clone();
    graph::check_insert_step(&before.steps, new.step_type).map_err(ApiError::validation)?;
    if let Some(template) = new.template_id {
        check_template(&state, project, template).await?;
    }
    let now = Timestamp::now();
    let step = new.into_step(id, now);
    let into = Transition {
        to_step_id: step.id,
        ..original.clone()
    };
    let onward = new_transition(id, step.id, original.to_step_id, None, None, 0, now);
    let change = GraphChange {
        put_steps: vec![step.clone()],
        put_transitions: vec![into.clone(), onward.clone()],
        ..GraphChange::default()
    };
    commit(&state, project, &record, version, &before, &change).await?;
    Ok(Envelope::created(InsertedStep {
        step: step_json(&step),
        transitions: vec![transition_json(&into), transition_json(&onward)],
    }))
}

/// Success envelope of `POST …/steps`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AddedStepEnvelope {
    success: bool,
    data: AddedStep,
}

/// Success envelope of a step.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StepEnvelope {
    success: bool,
    #[schema(value_type = Object)]
    data: Value,
}

/// Success envelope of a transition.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TransitionEnvelope {
    success: bool,
    #[schema(value_type = Object)]
    data: Value,
}

/// Success envelope of `insert-step`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InsertedStepEnvelope {
    success: bool,
    data: InsertedStep,
}
