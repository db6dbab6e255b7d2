//! `/campaigns` (campaigns.md): CRUD with the edit rules of the state machine, `send` now or at a
//! time, `cancel`, `test`, `duplicate` and `stats`. The fan-out itself runs in the background
//! (`plunk_worker::campaigns::fanout`); the state changes several paths share live in
//! `plunk_worker::campaigns::lifecycle`.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::campaign::{
    self, Campaign, CampaignAction, CampaignRates, CampaignStats, CampaignStatus, CancelReason,
};
use plunk_domain::email_record::SendClass;
use plunk_domain::validation::Fields;
use plunk_domain::{FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::idempotency;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::campaigns::{CampaignError, CampaignFilter, MAX_DUE_PER_MINUTE};
use plunk_worker::accept::{Acceptor, Recipient, RecipientContact};
use plunk_worker::campaigns::lifecycle::{self, StartRefusal};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Latest a campaign may be scheduled: a year ahead.
const MAX_SCHEDULE_AHEAD_SECONDS: i64 = 365 * 24 * 3600;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/campaigns", secret(get(list).post(create)))
        .route(
            "/campaigns/{id}",
            secret(get(read).put(put).patch(update).delete(remove)),
        )
        .route("/campaigns/{id}/send", secret(post(send)))
        .route("/campaigns/{id}/cancel", secret(post(cancel)))
        .route("/campaigns/{id}/test", secret(post(test)))
        .route("/campaigns/{id}/duplicate", secret(post(duplicate)))
        .route("/campaigns/{id}/stats", secret(get(stats)))
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::CampaignNotFound, "No campaign with this id")
}

async fn load(state: &AppState, project: Uuid, id: Uuid) -> Result<(Campaign, u64), ApiError> {
    state
        .store
        .campaigns()
        .get_versioned(project, id)
        .await?
        .ok_or_else(not_found)
}

/// 409 `CAMPAIGN_INVALID_STATE` unless `action` is allowed in the campaign's status.
fn allow(campaign: &Campaign, action: CampaignAction) -> Result<(), ApiError> {
    if action.allowed_in(campaign.status) {
        return Ok(());
    }
    let allowed: Vec<&str> = action.allowed().iter().map(|s| s.as_str()).collect();
    Err(ApiError::new(
        ErrorCode::CampaignInvalidState,
        format!(
            "Not possible while the campaign is {}",
            campaign.status.as_str()
        ),
    )
    .with_details(json!({ "status": campaign.status.as_str(), "allowed": allowed })))
}

fn campaign_error(e: CampaignError) -> ApiError {
    match e {
        CampaignError::NotFound => not_found(),
        CampaignError::TooLarge => ApiError::field(FieldError::new(
            "body",
            FieldCode::TooBig,
            "The campaign is too large to store (about 390 KB with its subject and body)",
        )),
        CampaignError::MinuteFull => ApiError::field(FieldError::new(
            "scheduledFor",
            FieldCode::Custom,
            format!(
                "At most {MAX_DUE_PER_MINUTE} campaigns of a project may be scheduled for the same minute; pick another minute"
            ),
        )),
        CampaignError::Conflict => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The campaign changed at the same time; retry",
        )
        .with_retry_after(1),
        CampaignError::Store(e) => e.into(),
    }
}

fn refusal_error(refusal: StartRefusal) -> ApiError {
    match refusal {
        StartRefusal::ProjectDisabled => {
            ApiError::new(ErrorCode::ProjectDisabled, "The project is disabled")
        }
        StartRefusal::DomainNotVerified { domain, reason } => {
            crate::send::sender_error(domain, reason)
        }
        StartRefusal::SegmentNotFound => ApiError::new(
            ErrorCode::SegmentNotFound,
            "The audience's segment no longer exists",
        )
        .with_details(json!({ "field": "segmentId" })),
    }
}

/// A campaign as the API shows it: the stored campaign with its counters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(nullable = true)]
    description: Option<String>,
    #[schema(pattern = "^(DRAFT|SCHEDULED|SENDING|SENT|CANCELLED)$")]
    status: &'static str,
    #[serde(rename = "type")]
    #[schema(pattern = "^(MARKETING|TRANSACTIONAL|HEADLESS)$")]
    campaign_type: &'static str,
    subject: String,
    body: String,
    from: String,
    #[schema(nullable = true)]
    from_name: Option<String>,
    #[schema(nullable = true)]
    reply_to: Option<String>,
    #[schema(pattern = "^(ALL|SEGMENT|FILTERED)$")]
    audience_type: &'static str,
    #[schema(format = Uuid, nullable = true)]
    segment_id: Option<String>,
    /// A FilterCondition (FILTERED), else null.
    #[schema(value_type = Option<Object>, nullable = true)]
    audience_condition: Option<Value>,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    scheduled_for: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    sent_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    completed_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    cancelled_at: Option<Timestamp>,
    #[schema(
        nullable = true,
        pattern = "^(USER|DOMAIN_NOT_VERIFIED|SEGMENT_NOT_FOUND|PROJECT_DISABLED)$"
    )]
    cancel_reason: Option<&'static str>,
    #[schema(value_type = Object)]
    stats: CampaignStats,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl CampaignView {
    fn of(c: &Campaign, stats: CampaignStats) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            description: c.description.clone(),
            status: c.status.as_str(),
            campaign_type: c.campaign_type.as_str(),
            subject: c.subject.clone(),
            body: c.body.clone(),
            from: c.from.to_string(),
            from_name: c.from_name.clone(),
            reply_to: c.reply_to.as_ref().map(|r| r.to_string()),
            audience_type: c.audience_type.as_str(),
            segment_id: c.segment_id.map(|s| s.to_string()),
            audience_condition: c.audience_condition.clone(),
            scheduled_for: c.scheduled_for,
            sent_at: c.sent_at,
            completed_at: c.completed_at,
            cancelled_at: c.cancelled_at,
            cancel_reason: c.cancel_reason.map(CancelReason::as_str),
            stats,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The view of `campaign` with its counters (a DRAFT has none yet).
async fn view(state: &AppState, project: Uuid, c: &Campaign) -> Result<CampaignView, ApiError> {
    let stats = if c.status == CampaignStatus::Draft && c.sent_at.is_none() {
        CampaignStats::default()
    } else {
        lifecycle::stats(&state.store, project, c.id).await?
    };
    Ok(CampaignView::of(c, stats))
}

/// Reads a create or update body and checks what the body's audience names exists: the
/// segment (404 `SEGMENT_NOT_FOUND`) and the segments the condition names (422).
async fn read_body(
    state: &AppState,
    project: Uuid,
    body: &Map<String, Value>,
    current: Option<&Campaign>,
) -> Result<campaign::CampaignChanges, ApiError> {
    let changes = campaign::read_body(body, current).map_err(ApiError::validation)?;
    if let plunk_domain::validation::Patch::Set((_, condition)) =
        &changes.audience.audience_condition
    {
        let (_, graph) = crate::segments::reference_graph(state, project).await?;
        crate::segments::check_references(None, condition, "audienceCondition", &graph)?;
    }
    if let plunk_domain::validation::Patch::Set(segment) = changes.audience.segment_id {
        if state
            .store
            .segments()
            .get(project, segment)
            .await?
            .is_none()
        {
            return Err(ApiError::new(
                ErrorCode::SegmentNotFound,
                "No segment with this id in the project",
            )
            .with_details(json!({ "field": "segmentId" })));
        }
    }
    Ok(changes)
}

/// List campaigns, newest first.
#[utoipa::path(get, path = "/campaigns", tag = "Campaigns",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("status" = Option<String>, Query, description = "DRAFT, SCHEDULED, SENDING, SENT or CANCELLED"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of name, subject or from", min_length = 1, max_length = 255),
    ),
    responses((status = 200, description = "One page of campaigns", body = inline(CampaignListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<CampaignView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let status = query.parsed(
        "status",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected one of DRAFT, SCHEDULED, SENDING, SENT, CANCELLED",
        CampaignStatus::parse,
    );
    let search = query
        .string("search", 1, 255, &mut errors)
        .map(|s| s.to_lowercase());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let binding = CursorBinding::new(
        project,
        "GET /campaigns",
        &[
            ("status", status.map(CampaignStatus::as_str)),
            ("search", search.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let filter = CampaignFilter { status, search };
    let page = state
        .store
        .campaigns()
        .list(project, &filter, limit, start)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for c in &page.items {
        items.push(view(&state, project, c).await?);
    }
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// Create a campaign (DRAFT).
#[utoipa::path(post, path = "/campaigns", tag = "Campaigns", request_body = inline(CampaignBody),
    responses(
        (status = 201, description = "Created", body = inline(CampaignEnvelope)),
        (status = 403, description = "DOMAIN_NOT_VERIFIED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 404, description = "SEGMENT_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<CampaignView>, ApiError> {
    let project = auth.project.id;
    let changes = read_body(&state, project, &body, None).await?;
    let campaign = changes
        .into_campaign(plunk_domain::id::new_id(), Timestamp::now())
        .ok_or_else(|| ApiError::internal(&"validated body lost a required member"))?;
    if let Err((domain, reason)) = state
        .store
        .domains()
        .check_sender(project, &campaign.from)
        .await?
    {
        return Err(crate::send::sender_error(domain, reason));
    }
    state
        .store
        .campaigns()
        .create(project, &campaign)
        .await
        .map_err(campaign_error)?;
    Ok(Envelope::created(CampaignView::of(
        &campaign,
        CampaignStats::default(),
    )))
}

/// One campaign.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "Campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = inline(CampaignEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<CampaignView>, ApiError> {
    let id = path_id(path, not_found)?;
    let (campaign, _) = load(&state, auth.project.id, id).await?;
    Ok(Envelope::ok(
        view(&state, auth.project.id, &campaign).await?,
    ))
}

/// Change any subset of a DRAFT or SCHEDULED campaign (`PUT` and `PATCH` alike).
#[utoipa::path(patch, path = "/campaigns/{id}", tag = "Campaigns", request_body = inline(CampaignPatchBody),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The changed campaign", body = inline(CampaignEnvelope)),
        (status = 409, description = "CAMPAIGN_INVALID_STATE", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<CampaignView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (current, version) = load(&state, project, id).await?;
    allow(&current, CampaignAction::Edit)?;
    let changes = read_body(&state, project, &body, Some(&current)).await?;
    let mut updated = current.clone();
    if !changes.apply(&mut updated) {
        return Ok(Envelope::ok(view(&state, project, &current).await?));
    }
    if updated.from != current.from {
        if let Err((domain, reason)) = state
            .store
            .domains()
            .check_sender(project, &updated.from)
            .await?
        {
            return Err(crate::send::sender_error(domain, reason));
        }
    }
    updated.updated_at = Timestamp::now().max(current.updated_at);
    state
        .store
        .campaigns()
        .save(project, &current, &updated, version, None, &[])
        .await
        .map_err(campaign_error)?;
    Ok(Envelope::ok(view(&state, project, &updated).await?))
}

/// `PUT` is a partial update too, as in Plunk: the same as `PATCH`.
#[utoipa::path(put, path = "/campaigns/{id}", tag = "Campaigns", request_body = inline(CampaignPatchBody),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The changed campaign", body = inline(CampaignEnvelope)),
        (status = 409, description = "CAMPAIGN_INVALID_STATE", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn put(
    state: State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    body: JsonObject,
) -> Result<Envelope<CampaignView>, ApiError> {
    update(state, auth, path, body).await
}

/// Delete a campaign (not while SENDING); its email records stay.
#[utoipa::path(delete, path = "/campaigns/{id}", tag = "Campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Deleted", body = inline(CampaignDeletedEnvelope)),
        (status = 409, description = "CAMPAIGN_INVALID_STATE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Value>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (campaign, version) = load(&state, project, id).await?;
    allow(&campaign, CampaignAction::Delete)?;
    state
        .store
        .campaigns()
        .delete(project, &campaign, version)
        .await
        .map_err(campaign_error)?;
    Ok(Envelope::ok(json!({ "id": id, "deleted": true })))
}

/// Body of `POST /campaigns/:id/send`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct SendBody {
    /// A future time with offset (≤ 365 days ahead), or null/absent to send now.
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    scheduled_for: Option<String>,
}

/// `data` of `send`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResult {
    campaign: CampaignView,
    message: String,
}

/// Send a campaign now, or schedule it.
#[utoipa::path(post, path = "/campaigns/{id}/send", tag = "Campaigns", request_body = inline(SendBody),
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-256 printable ASCII characters"),
    ),
    responses(
        (status = 200, description = "Sending or scheduled", body = inline(SendResultEnvelope)),
        (status = 403, description = "DOMAIN_NOT_VERIFIED or PROJECT_DISABLED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 404, description = "CAMPAIGN_NOT_FOUND or SEGMENT_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "CAMPAIGN_INVALID_STATE or an idempotency conflict", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR (scheduledFor)", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthContext,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Response {
    let id = match path_id(path, not_found) {
        Ok(id) => id,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let project = auth.project.clone();
    let route = format!("/campaigns/{id}/send");
    idempotency::post(&state, (&auth).into(), &headers, &route, &body, |_| {
        send_campaign(&state, project, id, &body)
    })
    .await
}

async fn send_campaign(
    state: &AppState,
    project: plunk_domain::project::Project,
    id: Uuid,
    body: &Map<String, Value>,
) -> Result<SendResult, ApiError> {
    let mut fields = Fields::new(body);
    let now = Timestamp::now();
    let scheduled_for = match fields.raw("scheduledFor") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => match Timestamp::parse_rfc3339(raw) {
            Some(at)
                if at > now
                    && at.unix_seconds() - now.unix_seconds() <= MAX_SCHEDULE_AHEAD_SECONDS =>
            {
                Some(at)
            }
            Some(_) => {
                fields.error(
                    "scheduledFor",
                    FieldCode::InvalidDate,
                    "Must be in the future and at most 365 days ahead",
                );
                None
            }
            None => {
                fields.error(
                    "scheduledFor",
                    FieldCode::InvalidDate,
                    "Expected an ISO 8601 timestamp with an offset, e.g. 2026-03-05T08:00:00+01:00",
                );
                None
            }
        },
        Some(_) => {
            fields.error(
                "scheduledFor",
                FieldCode::InvalidType,
                "Expected a timestamp string or null",
            );
            None
        }
    };
    fields.finish().map_err(ApiError::validation)?;
    let (campaign, version) = load(state, project.id, id).await?;
    allow(&campaign, CampaignAction::Send)?;
    if let Some(refusal) = lifecycle::check_start(&state.store, &project, &campaign).await? {
        return Err(refusal_error(refusal));
    }
    let (after, message) = match scheduled_for {
        Some(at) => {
            let mut after = campaign.clone();
            after.schedule(at, now);
            state
                .store
                .campaigns()
                .save(project.id, &campaign, &after, version, None, &[])
                .await
                .map_err(campaign_error)?;
            let message = format!("Campaign scheduled for {at}");
            (after, message)
        }
        None => {
            let (after, _) =
                lifecycle::start_sending(&state.store, project.id, &campaign, version, now)
                    .await
                    .map_err(campaign_error)?;
            (after, "Campaign is being sent".to_owned())
        }
    };
    Ok(SendResult {
        campaign: view(state, project.id, &after).await?,
        message,
    })
}

/// Cancel a DRAFT, SCHEDULED or SENDING campaign.
#[utoipa::path(post, path = "/campaigns/{id}/cancel", tag = "Campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Cancelled", body = inline(CampaignEnvelope)),
        (status = 409, description = "CAMPAIGN_INVALID_STATE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<CampaignView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (campaign, version) = load(&state, project, id).await?;
    allow(&campaign, CampaignAction::Cancel)?;
    let (after, _) = lifecycle::cancel(
        &state.store,
        project,
        &campaign,
        version,
        CancelReason::User,
        Timestamp::now(),
    )
    .await
    .map_err(campaign_error)?;
    Ok(Envelope::ok(view(&state, project, &after).await?))
}

/// Body of `POST /campaigns/:id/test`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct TestBody {
    /// One address.
    #[schema(format = Email)]
    email: String,
}

/// `data` of `test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    #[schema(format = Uuid)]
    email: String,
    to: String,
    message: String,
}

/// Send the campaign to one address, at transactional priority, outside its stats.
#[utoipa::path(post, path = "/campaigns/{id}/test", tag = "Campaigns", request_body = inline(TestBody),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Queued", body = inline(TestResultEnvelope)),
        (status = 403, description = "DOMAIN_NOT_VERIFIED", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<TestResult>, ApiError> {
    let project = &auth.project;
    let mut fields = Fields::new(&body);
    let to = fields.required_email("email");
    fields.finish().map_err(ApiError::validation)?;
    let to = to.ok_or_else(|| ApiError::internal(&"validated body lost its address"))?;
    let id = path_id(path, not_found)?;
    let (campaign, _) = load(&state, project.id, id).await?;
    let recipient = match state.store.contacts().get_by_email(project.id, &to).await? {
        Some(contact) => RecipientContact::Existing(contact),
        None => RecipientContact::Address(to.clone()),
    };
    let mut message = plunk_worker::campaigns::fanout::message(&campaign, project);
    // A test is not part of the campaign's audience: any address, subscribed or not, ahead of
    // campaign mail, outside the stats, with the campaign's content as it is when it sends.
    message.marketing = false;
    message.test = true;
    message.class = SendClass::Transactional;
    let email_id = plunk_domain::id::new_id();
    let acceptor = Acceptor {
        store: state.store.clone(),
        blobs: state.blobs.clone(),
        queues: state.send_queues.clone(),
    };
    acceptor
        .accept(
            project.id,
            &message,
            vec![Recipient {
                email_id,
                contact: recipient,
            }],
        )
        .await
        .map_err(crate::send::accept_error)?;
    Ok(Envelope::ok(TestResult {
        email: email_id.to_string(),
        to: to.to_string(),
        message: format!("Test email sent to {to}"),
    }))
}

/// Copy a campaign as a new DRAFT named `"<name> (copy)"`.
#[utoipa::path(post, path = "/campaigns/{id}/duplicate", tag = "Campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 201, description = "The new campaign", body = inline(CampaignEnvelope))),
    security(("bearer" = [])))]
pub async fn duplicate(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<CampaignView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (original, _) = load(&state, project, id).await?;
    let copy = original.duplicate(plunk_domain::id::new_id(), Timestamp::now());
    state
        .store
        .campaigns()
        .create(project, &copy)
        .await
        .map_err(campaign_error)?;
    Ok(Envelope::created(CampaignView::of(
        &copy,
        CampaignStats::default(),
    )))
}

/// `data` of `stats`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    #[schema(format = Uuid)]
    campaign_id: String,
    status: &'static str,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    counters: CampaignStats,
    #[schema(value_type = Object)]
    rates: CampaignRates,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

/// A campaign's counters and rates (campaigns.md §5).
#[utoipa::path(get, path = "/campaigns/{id}/stats", tag = "Campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The stats", body = inline(StatsEnvelope))),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<StatsView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (campaign, _) = load(&state, project, id).await?;
    let counters = lifecycle::stats(&state.store, project, id).await?;
    Ok(Envelope::ok(StatsView {
        campaign_id: id.to_string(),
        status: campaign.status.as_str(),
        rates: counters.rates(),
        counters,
        updated_at: Timestamp::now(),
    }))
}

/// Body of `POST /campaigns`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct CampaignBody {
    /// 1–100 characters.
    name: String,
    /// At most 500 characters.
    description: Option<String>,
    /// 1–998 characters, one line, Liquid.
    subject: String,
    /// HTML, at most 524,288 bytes, Liquid.
    body: String,
    /// An address at a verified domain of the project.
    #[schema(format = Email)]
    from: String,
    /// At most 100 characters, one line.
    from_name: Option<String>,
    #[schema(format = Email)]
    reply_to: Option<String>,
    /// MARKETING (default), TRANSACTIONAL or HEADLESS.
    #[serde(rename = "type")]
    #[schema(pattern = "^(MARKETING|TRANSACTIONAL|HEADLESS)$")]
    campaign_type: Option<String>,
    /// ALL (default), SEGMENT or FILTERED.
    #[schema(pattern = "^(ALL|SEGMENT|FILTERED)$")]
    audience_type: Option<String>,
    /// Required for SEGMENT audiences.
    #[schema(format = Uuid)]
    segment_id: Option<String>,
    /// A FilterCondition, required for FILTERED audiences.
    #[schema(value_type = Option<Object>)]
    audience_condition: Option<Value>,
}

/// Body of `PUT`/`PATCH /campaigns/:id`: any subset; nullable members accept `null`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct CampaignPatchBody {
    name: Option<String>,
    #[schema(nullable = true)]
    description: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    #[schema(format = Email)]
    from: Option<String>,
    #[schema(nullable = true)]
    from_name: Option<String>,
    #[schema(format = Email, nullable = true)]
    reply_to: Option<String>,
    #[serde(rename = "type")]
    #[schema(pattern = "^(MARKETING|TRANSACTIONAL|HEADLESS)$")]
    campaign_type: Option<String>,
    #[schema(pattern = "^(ALL|SEGMENT|FILTERED)$")]
    audience_type: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    segment_id: Option<String>,
    #[schema(value_type = Option<Object>, nullable = true)]
    audience_condition: Option<Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct CampaignEnvelope {
    success: bool,
    data: CampaignView,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct CampaignListData {
    items: Vec<CampaignView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct CampaignListEnvelope {
    success: bool,
    data: CampaignListData,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct CampaignDeleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct CampaignDeletedEnvelope {
    success: bool,
    data: CampaignDeleted,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SendResultEnvelope {
    success: bool,
    data: SendResult,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct TestResultEnvelope {
    success: bool,
    data: TestResult,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct StatsEnvelope {
    success: bool,
    data: StatsView,
}
