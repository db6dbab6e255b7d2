//! `/templates`: create, list with filters and cursor paging, read, change,
//! delete, duplicate, and the usage report.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::template::{Template, TemplateChanges, TemplateType};
use plunk_domain::validation::Fields;
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::templates::{TemplateError, TemplateFilter, MAX_INLINE_CONTENT_BYTES};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this group, behind the body-size check and the auth layer.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/templates", secret(get(list).post(create)))
        .route(
            "/templates/preview",
            secret(post(crate::template_preview::preview)),
        )
        .route(
            "/templates/{id}",
            secret(get(read).patch(update).delete(remove)),
        )
        .route("/templates/{id}/duplicate", secret(post(duplicate)))
        .route("/templates/{id}/usage", secret(get(usage)))
        .with_state(state)
}

/// Template type.
#[derive(ToSchema)]
#[schema(as = TemplateType)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum TemplateTypeDoc {
    TRANSACTIONAL,
    MARKETING,
    HEADLESS,
}

/// A template.
#[derive(ToSchema)]
#[schema(as = Template)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct TemplateDoc {
    #[schema(format = Uuid)]
    id: String,
    /// 1–100 characters.
    name: String,
    /// At most 500 characters.
    #[schema(nullable = true)]
    description: Option<String>,
    /// Liquid; 1–998 characters, no line breaks.
    subject: String,
    /// HTML with Liquid; 1 character to 524,288 bytes.
    body: String,
    /// Sender address; its domain is verified in the project.
    #[schema(format = Email)]
    from: String,
    /// At most 100 characters, no line breaks.
    #[schema(nullable = true)]
    from_name: Option<String>,
    #[schema(format = Email, nullable = true)]
    reply_to: Option<String>,
    #[schema(rename = "type")]
    template_type: TemplateTypeDoc,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Body of `POST /templates`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct CreateTemplateBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(max_length = 500, nullable = true)]
    description: Option<String>,
    /// Liquid, syntax-checked.
    #[schema(min_length = 1, max_length = 998)]
    subject: String,
    /// HTML with Liquid, syntax-checked; at most 524,288 bytes.
    #[schema(min_length = 1)]
    body: String,
    /// Its domain must be verified in this project.
    #[schema(format = Email)]
    from: String,
    #[schema(max_length = 100, nullable = true)]
    from_name: Option<String>,
    #[schema(format = Email, nullable = true)]
    reply_to: Option<String>,
    /// Default `MARKETING`.
    #[schema(nullable = false, rename = "type")]
    template_type: Option<TemplateTypeDoc>,
}

/// Body of `PATCH /templates/{id}`: any subset of the create members.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct UpdateTemplateBody {
    #[schema(nullable = false, min_length = 1, max_length = 100)]
    name: Option<String>,
    /// `null` clears it.
    #[schema(max_length = 500, nullable = true)]
    description: Option<String>,
    #[schema(nullable = false, min_length = 1, max_length = 998)]
    subject: Option<String>,
    #[schema(nullable = false, min_length = 1)]
    body: Option<String>,
    /// A changed sender is domain-checked.
    #[schema(nullable = false, format = Email)]
    from: Option<String>,
    /// `null` clears it.
    #[schema(max_length = 100, nullable = true)]
    from_name: Option<String>,
    /// `null` clears it.
    #[schema(format = Email, nullable = true)]
    reply_to: Option<String>,
    #[schema(nullable = false, rename = "type")]
    template_type: Option<TemplateTypeDoc>,
}

/// Result of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateDeleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

/// A workflow whose `SEND_EMAIL` steps use the template.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateWorkflowUse {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    step_ids: Vec<Uuid>,
}

/// Result of `GET /templates/{id}/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateUsage {
    workflows: Vec<TemplateWorkflowUse>,
    can_delete: bool,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::TemplateNotFound, "No template with this id")
}

fn template_error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::NotFound => not_found(),
        TemplateError::TooLarge => ApiError::field(FieldError::new(
            "body",
            FieldCode::TooBig,
            format!(
                "The template is too large to store for now (subject and body together at most \
                 {MAX_INLINE_CONTENT_BYTES} bytes); larger bodies arrive with blob storage"
            ),
        )),
        TemplateError::Store(e) => e.into(),
    }
}

/// 403 `DOMAIN_NOT_VERIFIED` unless the sender's domain is a verified domain of `project`.
async fn check_sender(
    state: &AppState,
    project: Uuid,
    from: &EmailAddress,
) -> Result<(), ApiError> {
    match state.store.domains().check_sender(project, from).await? {
        Ok(()) => Ok(()),
        Err((domain, reason)) => Err(crate::send::sender_error(domain, reason)),
    }
}

/// Field rules, then the Liquid syntax of `subject` and `body`. Both
/// are 422s, so one response lists them all: the field-rule errors, then a `template_syntax`
/// error for each of `subject` and `body` that passed its rules but does not parse.
fn read_body(
    body: &serde_json::Map<String, serde_json::Value>,
    create: bool,
) -> Result<TemplateChanges, ApiError> {
    let mut fields = Fields::new(body);
    let changes = if create {
        TemplateChanges::read_create(&mut fields)
    } else {
        TemplateChanges::read_patch(&mut fields)
    };
    let mut errors = fields.finish().err().unwrap_or_default();
    errors.extend(changes.syntax_errors());
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// List templates, newest first.
#[utoipa::path(get, path = "/templates", tag = "Templates",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("type" = Option<TemplateTypeDoc>, Query, description = "Only templates of this type"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of name, description or subject", min_length = 1, max_length = 255),
    ),
    responses((status = 200, description = "One page of templates", body = inline(TemplateListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<Template>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let template_type = query.parsed(
        "type",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected one of TRANSACTIONAL, MARKETING, HEADLESS",
        TemplateType::parse,
    );
    let search = query
        .string("search", 1, 255, &mut errors)
        .map(|s| s.to_lowercase());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let binding = CursorBinding::new(
        project,
        "GET /templates",
        &[
            ("type", template_type.map(TemplateType::as_str)),
            ("search", search.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let filter = TemplateFilter {
        template_type,
        search,
    };
    let page = state
        .store
        .templates()
        .list(project, &filter, limit, start)
        .await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, None).await?,
    ))
}

/// Create a template.
#[utoipa::path(post, path = "/templates", tag = "Templates", request_body = CreateTemplateBody,
    responses(
        (status = 201, description = "Created", body = inline(TemplateEnvelope)),
        (status = 403, description = "DOMAIN_NOT_VERIFIED, INVALID_KEY_TYPE or PROJECT_DISABLED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR, including template_syntax", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Template>, ApiError> {
    let project = auth.project.id;
    let changes = read_body(&body, true)?;
    let Some(from) = &changes.from else {
        return Err(ApiError::internal(&"validated body lost its sender"));
    };
    check_sender(&state, project, from).await?;
    let template = changes
        .into_template(plunk_domain::id::new_id(), Timestamp::now())
        .ok_or_else(|| ApiError::internal(&"validated body lost a required member"))?;
    state
        .store
        .templates()
        .create(project, &template)
        .await
        .map_err(template_error)?;
    Ok(Envelope::created(template))
}

/// One template.
#[utoipa::path(get, path = "/templates/{id}", tag = "Templates",
    params(("id" = String, Path, description = "Template id")),
    responses((status = 200, description = "The template", body = inline(TemplateEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Template>, ApiError> {
    let id = path_id(path, not_found)?;
    let template = state.store.templates().get(auth.project.id, id).await?;
    template.map(Envelope::ok).ok_or_else(not_found)
}

/// Change any subset of a template's members.
#[utoipa::path(patch, path = "/templates/{id}", tag = "Templates", request_body = UpdateTemplateBody,
    params(("id" = String, Path, description = "Template id")),
    responses(
        (status = 200, description = "The changed template", body = inline(TemplateEnvelope)),
        (status = 403, description = "DOMAIN_NOT_VERIFIED, INVALID_KEY_TYPE or PROJECT_DISABLED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR, including template_syntax", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Template>, ApiError> {
    let project = auth.project.id;
    let changes = read_body(&body, false)?;
    let id = path_id(path, not_found)?;
    let templates = state.store.templates();
    let current = templates.get(project, id).await?.ok_or_else(not_found)?;
    if changes.is_empty() {
        return Ok(Envelope::ok(current));
    }
    if let Some(from) = changes.from.as_ref().filter(|f| **f != current.from) {
        check_sender(&state, project, from).await?;
    }
    let template = templates
        .patch(project, id, &changes)
        .await
        .map_err(template_error)?;
    Ok(Envelope::ok(template))
}

/// Delete a template.
#[utoipa::path(delete, path = "/templates/{id}", tag = "Templates",
    params(("id" = String, Path, description = "Template id")),
    responses(
        (status = 200, description = "Deleted", body = inline(TemplateDeletedEnvelope)),
        (status = 409, description = "TEMPLATE_IN_USE (details.usedBy)", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<TemplateDeleted>, ApiError> {
    let id = path_id(path, not_found)?;
    let users = state
        .store
        .workflows()
        .template_users(auth.project.id, id)
        .await?;
    if !users.is_empty() {
        return Err(ApiError::new(
            ErrorCode::TemplateInUse,
            "Workflow steps send this template",
        )
        .with_details(json!({ "usedBy": users })));
    }
    state
        .store
        .templates()
        .delete(auth.project.id, id)
        .await
        .map_err(template_error)?;
    Ok(Envelope::ok(TemplateDeleted {
        id: id.to_string(),
        deleted: true,
    }))
}

/// Copy a template as `"<name> (copy)"`.
#[utoipa::path(post, path = "/templates/{id}/duplicate", tag = "Templates",
    params(("id" = String, Path, description = "Template id")),
    responses((status = 201, description = "The new template", body = inline(TemplateEnvelope))),
    security(("bearer" = [])))]
pub async fn duplicate(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Template>, ApiError> {
    let id = path_id(path, not_found)?;
    let copy = state
        .store
        .templates()
        .duplicate(auth.project.id, id)
        .await
        .map_err(template_error)?;
    Ok(Envelope::created(copy))
}

/// Which workflows use a template, and whether it can be deleted.
#[utoipa::path(get, path = "/templates/{id}/usage", tag = "Templates",
    params(("id" = String, Path, description = "Template id")),
    responses((status = 200, description = "The usage report", body = inline(TemplateUsageEnvelope))),
    security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<TemplateUsage>, ApiError> {
    let id = path_id(path, not_found)?;
    if state
        .store
        .templates()
        .get(auth.project.id, id)
        .await?
        .is_none()
    {
        return Err(not_found());
    }
    let workflows: Vec<TemplateWorkflowUse> = state
        .store
        .workflows()
        .template_users(auth.project.id, id)
        .await?
        .into_iter()
        .map(|u| TemplateWorkflowUse {
            id: u.workflow_id.to_string(),
            name: u.workflow_name,
            step_ids: u.step_ids,
        })
        .collect();
    Ok(Envelope::ok(TemplateUsage {
        can_delete: workflows.is_empty(),
        workflows,
    }))
}

/// Success envelope of a single template.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TemplateEnvelope {
    success: bool,
    data: TemplateDoc,
}

/// One page of templates.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct TemplatePageDoc {
    items: Vec<TemplateDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of `GET /templates`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TemplateListEnvelope {
    success: bool,
    data: TemplatePageDoc,
}

/// Success envelope of `DELETE /templates/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TemplateDeletedEnvelope {
    success: bool,
    data: TemplateDeleted,
}

/// Success envelope of `GET /templates/{id}/usage`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TemplateUsageEnvelope {
    success: bool,
    data: TemplateUsage,
}
