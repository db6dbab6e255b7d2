//! `/suppressions` (spec feedback-and-unsubscribe.md §3): the addresses a project never sends to.
//! Bounces and complaints add entries through delivery feedback; callers add `MANUAL` ones.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::Router;
use plunk_domain::validation::Fields;
use plunk_domain::FieldCode;
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::suppressions::{Suppression, SuppressionCause, SuppressionReason};
use serde::Serialize;
use utoipa::ToSchema;

/// Longest note.
const MAX_NOTE_CHARS: usize = 500;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/suppressions", secret(get(list).post(create)))
        .route("/suppressions/{id}", secret(delete(remove)))
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::SuppressionNotFound,
        "No suppression with this id",
    )
}

/// List suppressions, newest first.
#[utoipa::path(get, path = "/suppressions", tag = "Suppressions",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("reason" = Option<String>, Query, description = "HARD_BOUNCE, COMPLAINT or MANUAL"),
        ("email" = Option<String>, Query, description = "Exact address (normalised)"),
    ),
    responses((status = 200, description = "One page of suppressions", body = inline(SuppressionListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<Suppression>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let reason = query.parsed(
        "reason",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected HARD_BOUNCE, COMPLAINT or MANUAL",
        SuppressionReason::parse,
    );
    let email = query.parsed(
        "email",
        &mut errors,
        FieldCode::InvalidString,
        "Expected an email address",
        |raw| plunk_domain::EmailAddress::parse(raw).ok(),
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let email_text = email.as_ref().map(|e| e.to_string());
    let binding = CursorBinding::new(
        project,
        "GET /suppressions",
        &[
            ("reason", reason.map(|r| r.as_str())),
            ("email", email_text.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let suppressions = state.store.suppressions();
    // One address is one item: no paging needed.
    if let Some(email) = email {
        let items: Vec<Suppression> = suppressions
            .get(project, &email)
            .await?
            .into_iter()
            .filter(|s| reason.is_none_or(|r| s.reason == r))
            .collect();
        return Ok(Envelope::ok(ListPage {
            items,
            next_cursor: None,
            has_more: false,
            total: None,
        }));
    }
    let page = suppressions.list(project, reason, limit, start).await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, None).await?,
    ))
}

/// Suppress an address manually. An address already suppressed keeps its entry (200).
#[utoipa::path(post, path = "/suppressions", tag = "Suppressions", request_body = inline(SuppressionBody),
    responses(
        (status = 200, description = "Already suppressed: the existing entry", body = inline(SuppressionEnvelope)),
        (status = 201, description = "Suppressed", body = inline(SuppressionEnvelope)),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Suppression>, ApiError> {
    let mut fields = Fields::new(&body);
    let email = fields.required_email("email");
    let note = match fields.raw("note") {
        None | Some(serde_json::Value::Null) => None,
        Some(_) => fields.optional_string("note", 0, MAX_NOTE_CHARS),
    };
    fields.finish().map_err(ApiError::validation)?;
    let Some(email) = email else {
        return Err(ApiError::validation(vec![]));
    };
    let cause = SuppressionCause {
        note: note.map(str::to_owned),
        ..Default::default()
    };
    let (suppression, created) = state
        .store
        .suppressions()
        .add(auth.project.id, &email, SuppressionReason::Manual, cause)
        .await?;
    Ok(if created {
        Envelope::created(suppression)
    } else {
        Envelope::ok(suppression)
    })
}

/// `data` of a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

/// Remove a suppression; future sends to the address are allowed again.
#[utoipa::path(delete, path = "/suppressions/{id}", tag = "Suppressions",
    params(("id" = String, Path, description = "Suppression id")),
    responses((status = 200, description = "Deleted", body = inline(DeletedEnvelope))),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let id = path_id(path, not_found)?;
    match state
        .store
        .suppressions()
        .delete(auth.project.id, id)
        .await?
    {
        Some(_) => Ok(Envelope::ok(Deleted {
            id: id.to_string(),
            deleted: true,
        })),
        None => Err(not_found()),
    }
}

/// Body of `POST /suppressions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SuppressionBody {
    #[schema(format = Email)]
    email: String,
    #[schema(max_length = 500, nullable = true)]
    note: Option<String>,
}

/// A suppression (feedback-and-unsubscribe.md §3).
#[derive(ToSchema)]
#[schema(as = Suppression, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SuppressionDoc {
    #[schema(format = Uuid)]
    id: String,
    email: String,
    #[schema(pattern = "^(HARD_BOUNCE|COMPLAINT|MANUAL)$")]
    reason: String,
    #[schema(format = Uuid, nullable = true)]
    email_id: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    campaign_id: Option<String>,
    #[schema(nullable = true)]
    note: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// Success envelope of one suppression.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SuppressionEnvelope {
    success: bool,
    data: SuppressionDoc,
}

/// One page of suppressions.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct SuppressionPageDoc {
    items: Vec<SuppressionDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of a suppression list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SuppressionListEnvelope {
    success: bool,
    data: SuppressionPageDoc,
}

/// Success envelope of a deletion.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeletedEnvelope {
    success: bool,
    data: Deleted,
}
