//! A workflow's executions (workflows.md §5 "Executions"): manual start, list, one with its
//! steps, cancel, and cancel-all.

use super::{load, not_found, Deleted};
use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use plunk_domain::validation::FieldCode;
use plunk_domain::workflow::execution::{Execution, ExecutionStatus, StepExecution};
use plunk_domain::workflow::StepType;
use plunk_domain::{FieldError, Timestamp};
use plunk_http_kit::{
    ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::executions::NotStarted;
use plunk_worker::workflows::engine::Job;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Largest `context` of a manual start, serialised.
const MAX_CONTEXT_BYTES: usize = 32 * 1024;
/// Most executions one `cancel-all` call cancels before answering (the rest are listed again by
/// the next call; the count answered is of those active at the call).
const CANCEL_ALL_LIMIT: usize = 10_000;
/// Attempts of a cancel that races the engine moving the execution.
const CANCEL_ATTEMPTS: usize = 5;

fn execution_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::ExecutionNotFound,
        "No execution with this id in the workflow",
    )
}

/// An execution as the API shows it; `steps` only for one execution.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    workflow_id: String,
    #[schema(format = Uuid)]
    contact_id: String,
    /// RUNNING, WAITING, COMPLETED, EXITED, FAILED or CANCELLED.
    status: &'static str,
    #[schema(nullable = true)]
    current_step_id: Option<String>,
    #[schema(nullable = true)]
    exit_reason: Option<String>,
    #[schema(value_type = Object)]
    context: Value,
    #[schema(value_type = String, format = DateTime)]
    started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    completed_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    steps: Option<Vec<Value>>,
}

impl ExecutionView {
    fn of(e: &Execution, steps: Option<&[StepExecution]>) -> Self {
        Self {
            id: e.id.to_string(),
            workflow_id: e.workflow_id.to_string(),
            contact_id: e.contact_id.to_string(),
            status: e.status.as_str(),
            current_step_id: e.current_step_id.map(|s| s.to_string()),
            exit_reason: e.exit_reason.clone(),
            context: Value::Object(e.context.clone()),
            started_at: e.started_at,
            completed_at: e.completed_at,
            updated_at: e.updated_at,
            steps: steps.map(|s| {
                s.iter()
                    .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                    .collect()
            }),
        }
    }
}

/// The two ids of `/workflows/{id}/executions/{execution_id}`.
fn ids(path: Result<Path<(String, String)>, PathRejection>) -> Result<(Uuid, Uuid), ApiError> {
    let Ok(Path((workflow, execution))) = path else {
        return Err(not_found());
    };
    let workflow = plunk_domain::id::parse_id(&workflow).ok_or_else(not_found)?;
    let execution = plunk_domain::id::parse_id(&execution).ok_or_else(execution_not_found)?;
    Ok((workflow, execution))
}

/// Start an execution for a contact by hand.
#[utoipa::path(post, path = "/workflows/{id}/executions", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "{contactId, context?}"),
    responses(
        (status = 201, description = "The execution (RUNNING)", body = inline(ExecutionEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, CONTACT_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "WORKFLOW_DISABLED, WORKFLOW_REENTRY_NOT_ALLOWED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn start_execution(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<ExecutionView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let mut errors = Vec::new();
    let contact = match body.get("contactId") {
        Some(Value::String(s)) => match plunk_domain::id::parse_id(s) {
            Some(c) => Some(c),
            None => {
                errors.push(FieldError::new(
                    "contactId",
                    FieldCode::InvalidString,
                    "Expected a UUID",
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "contactId",
                FieldCode::Required,
                "Required",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                "contactId",
                FieldCode::InvalidType,
                "Expected a UUID",
            ));
            None
        }
    };
    let context = match body.get("context") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(c)) => {
            if serde_json::to_vec(c).map_or(usize::MAX, |b| b.len()) > MAX_CONTEXT_BYTES {
                errors.push(FieldError::new(
                    "context",
                    FieldCode::TooBig,
                    format!("At most {MAX_CONTEXT_BYTES} bytes"),
                ));
            }
            c.clone()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "context",
                FieldCode::InvalidType,
                "Expected an object",
            ));
            serde_json::Map::new()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let contact = contact.ok_or_else(|| ApiError::internal(&"validated body lost contactId"))?;
    let (record, _) = load(&state, project, id).await?;
    if !record.workflow.enabled {
        return Err(ApiError::new(
            ErrorCode::WorkflowDisabled,
            "The workflow is disabled",
        ));
    }
    if state
        .store
        .contacts()
        .get(project, contact)
        .await?
        .is_none()
    {
        return Err(
            ApiError::new(ErrorCode::ContactNotFound, "No contact with this id")
                .with_details(json!({ "field": "contactId" })),
        );
    }
    let graph = state.store.workflows().graph(project, id).await?;
    let trigger = graph
        .steps
        .iter()
        .find(|s| s.step_type == StepType::Trigger)
        .ok_or_else(|| ApiError::internal(&"a workflow without its TRIGGER step"))?;
    let execution = Execution::start(
        plunk_domain::id::new_id(),
        id,
        contact,
        trigger.id,
        context,
        Timestamp::now(),
    );
    match state
        .store
        .executions()
        .start(project, &execution, record.workflow.allow_reentry)
        .await?
    {
        Ok(()) => {}
        Err(NotStarted::Reentry | NotStarted::Duplicate) => {
            return Err(ApiError::new(
                ErrorCode::WorkflowReentryNotAllowed,
                "The contact is in this workflow, or was and may not enter again",
            ))
        }
    }
    // A job lost here leaves the execution RUNNING at its trigger; the scheduler's sweep moves it.
    let job = Job {
        project,
        workflow: id,
        execution: execution.id,
        event: None,
    };
    if let Err(e) =
        plunk_worker::workflows::start::enqueue(state.workflow_queue.as_ref(), &[job]).await
    {
        tracing::warn!(error = %e, "could not queue a started execution");
    }
    Ok(Envelope::created(ExecutionView::of(&execution, None)))
}

/// List a workflow's executions, newest first.
#[utoipa::path(get, path = "/workflows/{id}/executions", tag = "Workflows",
    params(
        ("id" = String, Path, description = "Workflow id"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("status" = Option<String>, Query, description = "RUNNING, WAITING, COMPLETED, EXITED, FAILED or CANCELLED"),
        ("contactId" = Option<String>, Query, description = "Only this contact's executions"),
    ),
    responses(
        (status = 200, description = "One page of executions", body = inline(ExecutionListEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn list_executions(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Envelope<ListPage<ExecutionView>>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let status = query.parsed(
        "status",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected one of RUNNING, WAITING, COMPLETED, EXITED, FAILED, CANCELLED",
        ExecutionStatus::parse,
    );
    let contact = query.uuid("contactId", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    load(&state, project, id).await?;
    let contact_text = contact.map(|c| c.to_string());
    let binding = CursorBinding::new(
        project,
        "GET /workflows/:id/executions",
        &[
            ("workflow", Some(id.to_string().as_str())),
            ("status", status.map(ExecutionStatus::as_str)),
            ("contactId", contact_text.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state
        .store
        .executions()
        .list(project, id, status, contact, limit, start)
        .await?;
    let items = page
        .items
        .iter()
        .map(|e| ExecutionView::of(e, None))
        .collect();
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// One execution with the records of its steps.
#[utoipa::path(get, path = "/workflows/{id}/executions/{execution_id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("execution_id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution with its steps", body = inline(ExecutionEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, EXECUTION_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn read_execution(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<ExecutionView>, ApiError> {
    let project = auth.project.id;
    let (id, execution_id) = ids(path)?;
    load(&state, project, id).await?;
    let (execution, _) = state
        .store
        .executions()
        .get(project, id, execution_id)
        .await?
        .ok_or_else(execution_not_found)?;
    let steps = state
        .store
        .executions()
        .steps(project, execution_id)
        .await?;
    Ok(Envelope::ok(ExecutionView::of(&execution, Some(&steps))))
}

/// Cancels one execution; `Ok(None)` when it had already ended.
async fn cancel_one(
    state: &AppState,
    project: Uuid,
    workflow: Uuid,
    execution: Uuid,
) -> Result<Option<Execution>, ApiError> {
    for _ in 0..CANCEL_ATTEMPTS {
        let (before, version) = state
            .store
            .executions()
            .get(project, workflow, execution)
            .await?
            .ok_or_else(execution_not_found)?;
        if !before.status.is_active() {
            return Ok(None);
        }
        let mut after = before.clone();
        after.end(
            ExecutionStatus::Cancelled,
            Some("CANCELLED".into()),
            Timestamp::now(),
        );
        if state
            .store
            .executions()
            .save(project, &before, version, &after, None)
            .await?
        {
            return Ok(Some(after));
        }
    }
    Err(ApiError::new(
        ErrorCode::ServiceUnavailable,
        "The execution kept changing; retry",
    )
    .with_retry_after(1))
}

fn not_active() -> ApiError {
    ApiError::new(
        ErrorCode::ExecutionNotActive,
        "The execution has already ended",
    )
}

/// Cancel a RUNNING or WAITING execution (its timers are dropped).
#[utoipa::path(post, path = "/workflows/{id}/executions/{execution_id}/cancel", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("execution_id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution (CANCELLED)", body = inline(ExecutionEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, EXECUTION_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "EXECUTION_NOT_ACTIVE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn cancel_execution(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<ExecutionView>, ApiError> {
    let project = auth.project.id;
    let (id, execution) = ids(path)?;
    load(&state, project, id).await?;
    let cancelled = cancel_one(&state, project, id, execution)
        .await?
        .ok_or_else(not_active)?;
    Ok(Envelope::ok(ExecutionView::of(&cancelled, None)))
}

/// Plunk's alias of cancel: `{id, deleted: true}` (no longer active; the record is kept).
#[utoipa::path(delete, path = "/workflows/{id}/executions/{execution_id}", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id"), ("execution_id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "Cancelled", body = inline(super::DeletedEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND, EXECUTION_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "EXECUTION_NOT_ACTIVE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove_execution(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let project = auth.project.id;
    let (id, execution) = ids(path)?;
    load(&state, project, id).await?;
    cancel_one(&state, project, id, execution)
        .await?
        .ok_or_else(not_active)?;
    Ok(Envelope::ok(Deleted::of(execution)))
}

/// `{cancelled}` of cancel-all.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledAll {
    cancelled: u64,
}

/// Cancel every RUNNING or WAITING execution of the workflow.
#[utoipa::path(post, path = "/workflows/{id}/executions/cancel-all", tag = "Workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "How many executions were active", body = inline(CancelledAllEnvelope)),
        (status = 404, description = "WORKFLOW_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn cancel_all_executions(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<CancelledAll>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (record, _) = load(&state, project, id).await?;
    let mut done = 0;
    for status in [ExecutionStatus::Running, ExecutionStatus::Waiting] {
        let mut start = None;
        loop {
            let page = state
                .store
                .executions()
                .list(project, id, Some(status), None, 100, start)
                .await?;
            for execution in &page.items {
                if done >= CANCEL_ALL_LIMIT {
                    break;
                }
                if cancel_one(&state, project, id, execution.id)
                    .await?
                    .is_some()
                {
                    done += 1;
                }
            }
            match page.next {
                Some(next) if done < CANCEL_ALL_LIMIT => start = Some(next),
                _ => break,
            }
        }
    }
    Ok(Envelope::ok(CancelledAll {
        cancelled: record.active_executions.max(done as u64),
    }))
}

/// Success envelope of an execution.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ExecutionEnvelope {
    success: bool,
    data: ExecutionView,
}

/// One page of executions.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ExecutionPageDoc {
    items: Vec<ExecutionView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of the executions list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ExecutionListEnvelope {
    success: bool,
    data: ExecutionPageDoc,
}

/// Success envelope of cancel-all.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CancelledAllEnvelope {
    success: bool,
    data: CancelledAll,
}
