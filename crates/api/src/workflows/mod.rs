//! `/workflows` (workflows.md §5): workflows CRUD with enable/disable and the trigger rules, and
//! the structural edits of their graphs (steps, transitions, insert-step, splice) with the graph
//! rules of §2 checked on every change ([`plunk_domain::workflow::graph`]). Every write is
//! conditional on the version of the workflow that was read, so two edits of one graph cannot
//! both pass the rules against the same old graph.

mod body;
pub mod executions;
pub mod graph_edits;

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use plunk_domain::validation::Patch;
use plunk_domain::workflow::{graph, Position, Step, StepType, Transition, TriggerType};
use plunk_domain::{FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::workflows::{Graph, GraphChange, WorkflowError, WorkflowRecord};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/workflows", secret(get(list).post(create)))
        .route(
            "/workflows/{id}",
            secret(get(read).patch(update).delete(remove)),
        )
        .route("/workflows/{id}/steps", secret(post(graph_edits::add_step)))
        .route(
            "/workflows/{id}/steps/{step_id}",
            secret(patch(graph_edits::update_step).delete(graph_edits::remove_step)),
        )
        .route(
            "/workflows/{id}/transitions",
            secret(post(graph_edits::add_transition)),
        )
        .route(
            "/workflows/{id}/transitions/{transition_id}",
            secret(delete(graph_edits::remove_transition)),
        )
        .route(
            "/workflows/{id}/transitions/{transition_id}/insert-step",
            secret(post(graph_edits::insert_step)),
        )
        .route(
            "/workflows/{id}/executions",
            secret(get(executions::list_executions).post(executions::start_execution)),
        )
        .route(
            "/workflows/{id}/executions/cancel-all",
            secret(post(executions::cancel_all_executions)),
        )
        .route(
            "/workflows/{id}/executions/{execution_id}",
            secret(get(executions::read_execution).delete(executions::remove_execution)),
        )
        .route(
            "/workflows/{id}/executions/{execution_id}/cancel",
            secret(post(executions::cancel_execution)),
        )
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::WorkflowNotFound, "No workflow with this id")
}

/// The workflow `id` of the project with its version; 404 `WORKFLOW_NOT_FOUND`.
async fn load(
    state: &AppState,
    project: Uuid,
    id: Uuid,
) -> Result<(WorkflowRecord, u64), ApiError> {
    state
        .store
        .workflows()
        .get(project, id)
        .await?
        .ok_or_else(not_found)
}

/// 409 `WORKFLOW_LOCKED` (`reason: ACTIVE_EXECUTIONS`) while executions are RUNNING or WAITING.
fn unlocked(record: &WorkflowRecord) -> Result<(), ApiError> {
    if record.active_executions == 0 {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::WorkflowLocked,
        format!(
            "{} execution(s) of this workflow are active",
            record.active_executions
        ),
    )
    .with_details(json!({ "reason": "ACTIVE_EXECUTIONS" })))
}

fn workflow_error(e: WorkflowError) -> ApiError {
    match e {
        WorkflowError::NotFound => not_found(),
        WorkflowError::Conflict => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The workflow changed at the same time; retry",
        )
        .with_retry_after(1),
        WorkflowError::Store(e) => e.into(),
    }
}

/// The URL rule of WEBHOOK steps at save time: the SSRF rules of webhooks (a literal forbidden
/// address or name is `forbidden_address`), loopback and private targets only with the local
/// server's flag.
fn url_check(state: &AppState) -> impl Fn(&str) -> Result<(), FieldError> + '_ {
    move |raw: &str| match plunk_webhooks::ssrf::validate_url(raw) {
        Ok(_) => Ok(()),
        Err(plunk_webhooks::ssrf::UrlRejection::ForbiddenAddress)
            if state.settings.allow_private_webhooks =>
        {
            Ok(())
        }
        Err(e) => Err(FieldError::new("url", e.field_code(), e.to_string())),
    }
}

/// 404 `TEMPLATE_NOT_FOUND` unless the project has the template.
async fn check_template(state: &AppState, project: Uuid, template: Uuid) -> Result<(), ApiError> {
    match state.store.templates().get(project, template).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            ErrorCode::TemplateNotFound,
            "No template with this id in the project",
        )
        .with_details(json!({ "field": "templateId" }))),
    }
}

/// A workflow as the API shows it; `steps` and `transitions` only where the spec shows them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(nullable = true)]
    description: Option<String>,
    enabled: bool,
    /// `EVENT` or `MANUAL`.
    trigger_type: String,
    /// `{eventName}` for EVENT, null for MANUAL.
    #[schema(value_type = Option<Object>, nullable = true)]
    trigger_config: Option<Value>,
    allow_reentry: bool,
    step_count: usize,
    active_executions: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    steps: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    transitions: Option<Vec<Value>>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl WorkflowView {
    fn of(record: &WorkflowRecord, graph: Option<&Graph>) -> Self {
        let w = &record.workflow;
        Self {
            id: w.id.to_string(),
            name: w.name.clone(),
            description: w.description.clone(),
            enabled: w.enabled,
            trigger_type: trigger_type_name(w.trigger_type).to_owned(),
            trigger_config: w
                .trigger_config
                .as_ref()
                .map(|t| json!({ "eventName": t.event_name })),
            allow_reentry: w.allow_reentry,
            step_count: record.step_count,
            active_executions: record.active_executions,
            steps: graph.map(|g| g.steps.iter().map(step_json).collect()),
            transitions: graph.map(|g| g.transitions.iter().map(transition_json).collect()),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

fn trigger_type_name(t: TriggerType) -> &'static str {
    match t {
        TriggerType::Event => "EVENT",
        TriggerType::Manual => "MANUAL",
    }
}

/// A step as the API shows it.
pub(crate) fn step_json(step: &Step) -> Value {
    serde_json::to_value(step).unwrap_or(Value::Null)
}

/// A transition as the API shows it.
pub(crate) fn transition_json(transition: &Transition) -> Value {
    serde_json::to_value(transition).unwrap_or(Value::Null)
}

/// The TRIGGER step every workflow is created with.
fn trigger_step(workflow: Uuid, now: Timestamp) -> Step {
    Step {
        id: plunk_domain::id::new_id(),
        workflow_id: workflow,
        step_type: StepType::Trigger,
        name: "Trigger".into(),
        position: Position { x: 0.0, y: 0.0 },
        config: json!({}),
        template_id: None,
        created_at: now,
        updated_at: now,
    }
}

/// The full graph check of enabling (422 with every problem).
fn check_enable(state: &AppState, graph: &Graph) -> Result<(), ApiError> {
    graph::check_enable(&graph.steps, &graph.transitions, &url_check(state))
        .map_err(ApiError::validation)
}

/// List workflows, newest first.
#[utoipa::path(get, path = "/workflows", tag = "Workflows",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("enabled" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) workflows"),
    ),
    responses((status = 200, description = "One page of workflows", body = inline(WorkflowListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<WorkflowView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let enabled = query.bool("enabled", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let enabled_text = enabled.map(|e| if e { "true" } else { "false" });
    let binding = CursorBinding::new(project, "GET /workflows", &[("enabled", enabled_text)]);
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state
        .store
        .workflows()
        .list(project, enabled, limit, start)
        .await?;
    let items = page
        .items
        .iter()
        .map(|r| WorkflowView::of(r, None))
        .collect();
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// Create a workflow triggered by an event, with its TRIGGER step.
#[utoipa::path(post, path = "/workflows", tag = "Workflows", request_body = inline(body::CreateBody),
    responses(
        (status = 201, description = "Created, with its TRIGGER step", body = inline(WorkflowEnvelope)),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(raw): JsonObject,
) -> Result<Envelope<WorkflowView>, ApiError> {
    let project = auth.project.id;
    let now = Timestamp::now();
    let workflow =
        body::read_create(&raw, plunk_domain::id::new_id(), now).map_err(ApiError::validation)?;
    let trigger = trigger_step(workflow.id, now);
    let graph = Graph {
        steps: vec![trigger],
        transitions: Vec::new(),
    };
    if workflow.enabled {
        check_enable(&state, &graph)?;
    }
    let record = WorkflowRecord {
        workflow,
        step_count: graph.steps.len(),
        active_executions: 0,
        wait_event_names: Vec::new(),
    };
    state
        .store
        .workflows()
        .create(project, &record, &graph.steps)
        .await
        .map_err(workflow_error)?;
    Ok(Envelope::created(WorkflowView::of(&record, Some(&graph))))
}

/// One workflow with its steps and transitions.
#[utoipa::path(get, path = "/workflows/{id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "The workflow", body = inline(WorkflowEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<WorkflowView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (record, _) = load(&state, project, id).await?;
    let graph = state.store.workflows().graph(project, id).await?;
    Ok(Envelope::ok(WorkflowView::of(&record, Some(&graph))))
}

/// Change a workflow's settings; enabling runs the full graph check.
#[utoipa::path(patch, path = "/workflows/{id}", tag = "Workflows", request_body = inline(body::UpdateBody),
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "The workflow", body = inline(WorkflowEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED (details.reason TRIGGER_USED or ACTIVE_EXECUTIONS)", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(raw): JsonObject,
) -> Result<Envelope<WorkflowView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let changes = body::read_update(&raw).map_err(ApiError::validation)?;
    let (before, version) = load(&state, project, id).await?;
    let mut after = before.clone();
    let w = &mut after.workflow;
    if let Some(name) = changes.name {
        w.name = name;
    }
    match changes.description {
        Patch::Absent => {}
        Patch::Null => w.description = None,
        Patch::Set(d) => w.description = Some(d),
    }
    if let Some(allow) = changes.allow_reentry {
        w.allow_reentry = allow;
    }
    if let Some(enabled) = changes.enabled {
        w.enabled = enabled;
    }
    let trigger = body::apply_trigger(w, changes.trigger_type, changes.trigger_config)
        .map_err(ApiError::validation)?;
    if trigger.changed {
        unlocked(&before)?;
        if trigger.event_name_changed && state.store.executions().any(project, id).await? {
            return Err(ApiError::new(
                ErrorCode::WorkflowLocked,
                "The trigger's event name cannot change after the workflow's first execution",
            )
            .with_details(json!({ "reason": "TRIGGER_USED" })));
        }
    }
    let graph = state.store.workflows().graph(project, id).await?;
    if after.workflow.enabled && !before.workflow.enabled {
        check_enable(&state, &graph)?;
    }
    if after != before {
        after.workflow.updated_at = Timestamp::now();
        let renamed = before.workflow.name != after.workflow.name;
        state
            .store
            .workflows()
            .save(
                project,
                &before,
                &after,
                version,
                renamed.then_some(&graph),
                &GraphChange::default(),
            )
            .await
            .map_err(workflow_error)?;
    }
    Ok(Envelope::ok(WorkflowView::of(&after, Some(&graph))))
}

/// Delete a workflow with its steps, transitions and (in the background) ended executions.
#[utoipa::path(delete, path = "/workflows/{id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Deleted", body = inline(DeletedEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_LOCKED (ACTIVE_EXECUTIONS)", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (record, version) = load(&state, project, id).await?;
    unlocked(&record)?;
    let graph = state.store.workflows().graph(project, id).await?;
    // The ended executions go in the background (a million of them is hours of deletes): the
    // purge is queued first, with a delay, so no deleted workflow is left without one.
    let purge = plunk_worker::workflows::engine::PurgeJob {
        project,
        purge_workflow: id,
    };
    state
        .workflow_queue
        .send(&purge.body(), plunk_worker::workflows::engine::PURGE_DELAY)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not queue a workflow purge");
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                "The workflow could not be deleted now; try again",
            )
            .with_retry_after(1)
        })?;
    state
        .store
        .workflows()
        .delete(project, &record, version, &graph)
        .await
        .map_err(workflow_error)?;
    Ok(Envelope::ok(Deleted::of(id)))
}

/// `{id, deleted: true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

impl Deleted {
    pub(crate) fn of(id: Uuid) -> Self {
        Self {
            id: id.to_string(),
            deleted: true,
        }
    }
}

/// Success envelope of a workflow.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowEnvelope {
    success: bool,
    data: WorkflowView,
}

/// One page of workflows.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct WorkflowPageDoc {
    items: Vec<WorkflowView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of `GET /workflows`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowListEnvelope {
    success: bool,
    data: WorkflowPageDoc,
}

/// Success envelope of a deletion.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeletedEnvelope {
    success: bool,
    data: Deleted,
}
