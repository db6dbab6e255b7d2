//! `/emails` (spec events-and-emails.md §5–§6): the status of every email.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use plunk_domain::email_record::{EmailRecord, EmailStatus};
use plunk_domain::FieldCode;
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, QueryParams};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::emails::EmailFilter;
use utoipa::ToSchema;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/emails", secret(get(list)))
        .route("/emails/{id}", secret(get(read)))
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::EmailNotFound, "No email with this id")
}

/// List emails, newest first.
#[utoipa::path(get, path = "/emails", tag = "Emails",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("contactId" = Option<String>, Query, format = Uuid),
        ("status" = Option<String>, Query, description = "PENDING, SENDING, SENT, DELIVERED, OPENED, CLICKED, BOUNCED, COMPLAINED, FAILED or SUPPRESSED"),
        ("campaignId" = Option<String>, Query, format = Uuid),
    ),
    responses((status = 200, description = "One page of emails", body = EmailListEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<EmailRecord>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let contact_id = query.uuid("contactId", &mut errors);
    let campaign_id = query.uuid("campaignId", &mut errors);
    let status = query.parsed(
        "status",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Unknown status",
        EmailStatus::parse,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (c, k) = (
        contact_id.map(|u| u.to_string()),
        campaign_id.map(|u| u.to_string()),
    );
    let binding = CursorBinding::new(
        project,
        "GET /emails",
        &[
            ("contactId", c.as_deref()),
            ("status", status.map(|s| s.as_str())),
            ("campaignId", k.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let filter = EmailFilter {
        contact_id,
        status,
        campaign_id,
    };
    let page = state
        .store
        .emails()
        .list(project, &filter, limit, start)
        .await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, None).await?,
    ))
}

/// One email.
#[utoipa::path(get, path = "/emails/{id}", tag = "Emails",
    params(("id" = String, Path, description = "Email id")),
    responses((status = 200, description = "The email", body = EmailEnvelope)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<EmailRecord>, ApiError> {
    let id = path_id(path, not_found)?;
    let email = state.store.emails().get(auth.project.id, id).await?;
    email.map(Envelope::ok).ok_or_else(not_found)
}

/// An email record (events-and-emails.md §5).
#[derive(ToSchema)]
#[schema(as = Email, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EmailDoc {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid, nullable = true)]
    contact_id: Option<String>,
    to: String,
    #[schema(nullable = true)]
    to_name: Option<String>,
    from: String,
    from_name: String,
    #[schema(nullable = true)]
    reply_to: Option<String>,
    subject: String,
    #[schema(pattern = "^(TRANSACTIONAL|CAMPAIGN|WORKFLOW)$")]
    source_type: String,
    #[schema(format = Uuid, nullable = true)]
    template_id: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    campaign_id: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    workflow_id: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    workflow_execution_id: Option<String>,
    marketing: bool,
    tracking: bool,
    test: bool,
    #[schema(
        pattern = "^(PENDING|SENDING|SENT|DELIVERED|OPENED|CLICKED|BOUNCED|COMPLAINED|FAILED|SUPPRESSED)$"
    )]
    status: String,
    #[schema(nullable = true)]
    error: Option<String>,
    attempts: u32,
    #[schema(nullable = true)]
    message_id: Option<String>,
    opens: u32,
    clicks: u32,
    #[schema(nullable = true)]
    bounce_type: Option<String>,
    #[schema(nullable = true)]
    bounce_sub_type: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    queued_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    sending_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    sent_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    delivered_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    opened_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    clicked_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    bounced_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    complained_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    delayed_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    failed_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    suppressed_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Success envelope of one email.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailEnvelope {
    success: bool,
    data: EmailDoc,
}

/// One page of emails.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct EmailPageDoc {
    items: Vec<EmailDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of an email list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailListEnvelope {
    success: bool,
    data: EmailPageDoc,
}
