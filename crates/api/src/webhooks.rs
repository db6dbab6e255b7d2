//! `/webhooks`: endpoints with event filters, secret rotation, test sends,
//! and the delivery log with manual retries. Deliveries themselves are made by the webhook worker
//! (`plunk_worker::webhooks`).

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::validation::{Fields, Patch};
use plunk_domain::{FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::webhooks::{Delivery, DeliveryStatus, SigningSecret, Webhook, MAX_WEBHOOKS};
use plunk_webhooks::ssrf::{validate_url, UrlRejection};
use plunk_webhooks::{SecretBox, WebhookSecret};
use plunk_worker::webhooks::{enqueue, new_delivery, WebhookJob};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest grace period of a rotated-out secret (7 days).
const MAX_EXPIRE_SECONDS: i64 = 604_800;
/// Default grace period of a rotated-out secret (1 day).
const DEFAULT_EXPIRE_SECONDS: i64 = 86_400;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/webhooks", secret(get(list).post(create)))
        .route(
            "/webhooks/{id}",
            secret(get(read).patch(update).delete(remove)),
        )
        .route("/webhooks/{id}/rotate-secret", secret(post(rotate_secret)))
        .route("/webhooks/{id}/test", secret(post(test)))
        .route("/webhooks/{id}/deliveries", secret(get(deliveries)))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}",
            secret(get(read_delivery)),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            secret(post(retry_delivery)),
        )
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFound, "No webhook with this id")
}

fn delivery_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::WebhookDeliveryNotFound,
        "No delivery with this id for this webhook",
    )
}

/// A webhook as the API shows it: never with its secrets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[schema(format = Uuid)]
    id: String,
    url: String,
    #[schema(nullable = true)]
    description: Option<String>,
    events: Vec<String>,
    enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.events.clone(),
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new webhook, with its secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    /// `whsec_…`: keep it to verify signatures.
    secret: String,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    webhook_id: String,
    #[schema(format = Uuid)]
    event_id: String,
    event_type: String,
    #[schema(pattern = "^(PENDING|SUCCEEDED|FAILED)$")]
    status: &'static str,
    attempts: u32,
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_attempt_at: Option<Timestamp>,
    response_status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
    duration_ms: Option<u64>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            response_status: d.response_status,
            response_body: d.response_body.clone(),
            error: d.error.clone(),
            duration_ms: d.duration_ms,
            created_at: d.created_at,
        }
    }
}

/// The URL rules of webhooks; loopback and private targets only with the local flag.
fn check_url(state: &AppState, fields: &mut Fields, raw: &str) -> Option<String> {
    match validate_url(raw) {
        Ok(url) => Some(url.to_string()),
        Err(UrlRejection::ForbiddenAddress) if state.settings.allow_private_webhooks => {
            Some(raw.trim().to_owned())
        }
        Err(e) => {
            fields.error("url", e.field_code(), e.to_string());
            None
        }
    }
}

/// Reads `events` (an array of patterns) when present. Errors name the item by its position in
/// the array as sent.
fn check_events(fields: &mut Fields, body: &Map<String, Value>) -> Option<Vec<String>> {
    let raw = body.get("events")?;
    let Some(items) = raw.as_array() else {
        fields.error(
            "events",
            FieldCode::InvalidType,
            "Expected an array of patterns",
        );
        return None;
    };
    let non_strings: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].is_string())
        .collect();
    if !non_strings.is_empty() {
        for i in non_strings {
            fields.push(FieldError::new(
                format!("events[{i}]"),
                FieldCode::InvalidType,
                "Expected a string",
            ));
        }
        return None;
    }
    let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    match plunk_webhooks::patterns::validate_list("events", &texts) {
        Ok(patterns) => Some(patterns),
        Err(errors) => {
            for e in errors {
                fields.push(e);
            }
            None
        }
    }
}

/// Reads a nullable description (≤ 500 characters).
fn check_description(fields: &mut Fields, body: &Map<String, Value>) -> Patch<String> {
    match body.get("description") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(_) => match fields.optional_string("description", 0, MAX_DESCRIPTION_CHARS) {
            Some(d) => Patch::Set(d.to_owned()),
            None => Patch::Absent,
        },
    }
}

async fn load(state: &AppState, project: Uuid, id: Uuid) -> Result<(Webhook, u64), ApiError> {
    state
        .store
        .webhooks()
        .get(project, id)
        .await?
        .ok_or_else(not_found)
}

/// Seals every signing secret of `webhook` still stored in plain text.
fn seal_plain_secrets(state: &AppState, webhook: &mut Webhook) {
    let id = webhook.id.to_string();
    for s in &mut webhook.secrets {
        if !SecretBox::is_sealed(&s.secret) {
            s.secret = state.webhook_secrets.seal(&id, &s.secret);
        }
    }
}

/// Create a webhook.
#[utoipa::path(post, path = "/webhooks", tag = "Webhooks", request_body = inline(WebhookBody),
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = inline(CreatedEnvelope)),
        (status = 409, description = "WEBHOOK_LIMIT_REACHED", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<CreatedWebhook>, ApiError> {
    let project = auth.project.id;
    let mut fields = Fields::new(&body);
    let url = fields
        .required_string("url", 1, usize::MAX)
        .and_then(|raw| check_url(&state, &mut fields, raw));
    let events = check_events(&mut fields, &body);
    let description = check_description(&mut fields, &body);
    let enabled = fields.optional_bool("enabled");
    fields.finish().map_err(ApiError::validation)?;
    let Some(url) = url else {
        return Err(ApiError::validation(vec![]));
    };
    let secret = WebhookSecret::generate();
    let now = Timestamp::now();
    let id = plunk_domain::id::new_id();
    let webhook = Webhook {
        id,
        url,
        description: match description {
            Patch::Set(d) => Some(d),
            _ => None,
        },
        events: events.unwrap_or_else(|| vec![plunk_webhooks::patterns::MATCH_ALL.to_owned()]),
        enabled: enabled.unwrap_or(true),
        secrets: vec![SigningSecret {
            secret: state.webhook_secrets.seal(&id.to_string(), secret.expose()),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
    };
    if !state.store.webhooks().create(project, &webhook).await? {
        return Err(ApiError::new(
            ErrorCode::WebhookLimitReached,
            format!("A project can have at most {MAX_WEBHOOKS} webhooks"),
        ));
    }
    Ok(Envelope::created(CreatedWebhook {
        webhook: WebhookView::from(&webhook),
        secret: secret.expose().to_owned(),
    }))
}

/// List webhooks, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "Webhooks",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
    ),
    responses((status = 200, description = "One page of webhooks", body = inline(WebhookListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<WebhookView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let binding = CursorBinding::new(project, "GET /webhooks", &[]);
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state.store.webhooks().list(project, limit, start).await?;
    let items = page.items.iter().map(WebhookView::from).collect();
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook", body = inline(WebhookEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<WebhookView>, ApiError> {
    let id = path_id(path, not_found)?;
    let (webhook, _) = load(&state, auth.project.id, id).await?;
    Ok(Envelope::ok(WebhookView::from(&webhook)))
}

/// Change a webhook.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "Webhooks", request_body = inline(WebhookPatch),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook", body = inline(WebhookEnvelope))),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<WebhookView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let mut fields = Fields::new(&body);
    let url = fields
        .optional_string("url", 1, usize::MAX)
        .and_then(|raw| check_url(&state, &mut fields, raw));
    let events = check_events(&mut fields, &body);
    let description = check_description(&mut fields, &body);
    let enabled = fields.optional_bool("enabled");
    fields.finish().map_err(ApiError::validation)?;
    let (mut webhook, version) = load(&state, project, id).await?;
    if let Some(url) = url {
        webhook.url = url;
    }
    if let Some(events) = events {
        webhook.events = events;
    }
    match description {
        Patch::Set(d) => webhook.description = Some(d),
        Patch::Null => webhook.description = None,
        Patch::Absent => {}
    }
    if let Some(enabled) = enabled {
        webhook.enabled = enabled;
    }
    webhook.updated_at = Timestamp::now();
    save(&state, project, &webhook, version).await?;
    Ok(Envelope::ok(WebhookView::from(&webhook)))
}

/// Saves a webhook; signing secrets stored before encryption are sealed on the way.
async fn save(
    state: &AppState,
    project: Uuid,
    webhook: &Webhook,
    version: u64,
) -> Result<(), ApiError> {
    let mut webhook = webhook.clone();
    seal_plain_secrets(state, &mut webhook);
    match state
        .store
        .webhooks()
        .save(project, &webhook, version)
        .await
    {
        Err(e) if e.is_condition_failed() => Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The webhook changed at the same time; retry",
        )),
        other => other.map_err(Into::into),
    }
}

/// `data` of a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

/// Delete a webhook; its pending deliveries stop.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "Deleted", body = inline(DeletedEnvelope))),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let id = path_id(path, not_found)?;
    load(&state, auth.project.id, id).await?;
    state.store.webhooks().delete(auth.project.id, id).await?;
    Ok(Envelope::ok(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

/// `data` of a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    webhook: WebhookView,
    /// The new current secret.
    secret: String,
}

/// Replace the signing secret; the old one keeps signing until it expires.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "Webhooks", request_body = inline(RotateBody),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "Rotated", body = inline(RotatedEnvelope))),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Rotated>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let expire = match body.get("expireCurrentInSeconds") {
        None => DEFAULT_EXPIRE_SECONDS,
        Some(v) => {
            let field = "expireCurrentInSeconds";
            let problem = match v.as_i64() {
                None if v.is_u64() => Some((FieldCode::TooBig, "At most 604800")),
                None => Some((
                    FieldCode::InvalidType,
                    "Expected an integer number of seconds",
                )),
                Some(n) if n < 0 => Some((FieldCode::TooSmall, "At least 0")),
                Some(n) if n > MAX_EXPIRE_SECONDS => Some((FieldCode::TooBig, "At most 604800")),
                Some(_) => None,
            };
            if let Some((code, message)) = problem {
                return Err(ApiError::field(FieldError::new(field, code, message)));
            }
            v.as_i64().unwrap_or(DEFAULT_EXPIRE_SECONDS)
        }
    };
    let (mut webhook, version) = load(&state, project, id).await?;
    let now = Timestamp::now();
    let until = Timestamp::from_millis(now.unix_millis() + expire * 1000).unwrap_or(now);
    for s in &mut webhook.secrets {
        if s.expires_at.is_none() {
            s.expires_at = Some(until);
        }
    }
    webhook
        .secrets
        .retain(|s| s.expires_at.is_some_and(|at| at > now));
    let secret = WebhookSecret::generate();
    webhook.secrets.insert(
        0,
        SigningSecret {
            secret: state
                .webhook_secrets
                .seal(&webhook.id.to_string(), secret.expose()),
            expires_at: None,
        },
    );
    webhook.updated_at = now;
    save(&state, project, &webhook, version).await?;
    Ok(Envelope::ok(Rotated {
        webhook: WebhookView::from(&webhook),
        secret: secret.expose().to_owned(),
    }))
}

/// Test sends and manual retries a project may ask for in a minute: each is a request to a URL
/// the project chose, made by this service, so they are bounded apart from the request limit.
pub const WEBHOOK_CALLS_PER_MINUTE: u32 = 10;

/// 429 once the project asked for [`WEBHOOK_CALLS_PER_MINUTE`] test sends and retries this minute.
async fn outbound_allowance(state: &AppState, project: uuid::Uuid) -> Result<(), ApiError> {
    let decision = state
        .store
        .rate_limiter()
        .hit_webhook_calls(
            project,
            WEBHOOK_CALLS_PER_MINUTE,
            Timestamp::now().unix_seconds(),
        )
        .await;
    if decision.allowed {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::RateLimitExceeded,
        format!("At most {WEBHOOK_CALLS_PER_MINUTE} webhook test sends and retries a minute"),
    )
    .with_details(
        serde_json::json!({ "limit": decision.limit, "retryAfter": decision.reset_seconds }),
    )
    .with_retry_after(u64::from(decision.reset_seconds)))
}

/// Send a synthetic `webhook.test` event to this webhook only.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "Webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The delivery, PENDING", body = inline(DeliveryEnvelope)),
        (status = 409, description = "WEBHOOK_DISABLED", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<DeliveryView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (webhook, _) = load(&state, project, id).await?;
    require_enabled(&webhook)?;
    outbound_allowance(&state, project).await?;
    let event_id = plunk_domain::id::new_id();
    let now = Timestamp::now();
    let payload = plunk_webhooks::payload::test_body(event_id, now);
    let delivery = new_delivery(
        webhook.id,
        event_id,
        plunk_webhooks::payload::TEST_EVENT_NAME,
        now,
        payload,
    );
    state
        .store
        .webhooks()
        .create_delivery(project, &delivery)
        .await?;
    if let Err(e) = queue_attempt(&state, project, &delivery, false).await {
        // Nothing will attempt it: say so on the delivery rather than leave it PENDING.
        let mut failed = delivery.clone();
        failed.status = DeliveryStatus::Failed;
        failed.next_attempt_at = None;
        failed.error = Some("queue_unavailable".into());
        let _ = state
            .store
            .webhooks()
            .save_delivery(project, &failed, 1)
            .await;
        return Err(e);
    }
    Ok(Envelope::ok(DeliveryView::from(&delivery)))
}

async fn queue_attempt(
    state: &AppState,
    project: Uuid,
    delivery: &Delivery,
    one_off: bool,
) -> Result<(), ApiError> {
    let job = WebhookJob {
        project_id: project,
        webhook_id: delivery.webhook_id,
        delivery_id: delivery.id,
        attempt: delivery.attempts,
        one_off,
        waits: 0,
    };
    enqueue(state.webhook_queue.as_ref(), job, Duration::ZERO)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "webhook queue unavailable");
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                "The delivery queue is unavailable; retry",
            )
        })
}

/// A webhook's deliveries, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "Webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("status" = Option<String>, Query, description = "PENDING, SUCCEEDED or FAILED"),
        ("eventType" = Option<String>, Query, description = "Exact event name", min_length = 1, max_length = 255),
    ),
    responses((status = 200, description = "One page of deliveries", body = inline(DeliveryListEnvelope))),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Envelope<ListPage<DeliveryView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let status = query.parsed(
        "status",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected PENDING, SUCCEEDED or FAILED",
        DeliveryStatus::parse,
    );
    let event_type = query.string("eventType", 1, 255, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = path_id(path, not_found)?;
    load(&state, project, id).await?;
    let endpoint = format!("GET /webhooks/{id}/deliveries");
    let binding = CursorBinding::new(
        project,
        &endpoint,
        &[
            ("status", status.map(|s| s.as_str())),
            ("eventType", event_type.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state
        .store
        .webhooks()
        .deliveries(project, id, status, event_type.as_deref(), limit, start)
        .await?;
    let items = page.items.iter().map(DeliveryView::from).collect();
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

async fn load_delivery(
    state: &AppState,
    project: Uuid,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Webhook, Delivery, u64), ApiError> {
    let Ok(Path((webhook, delivery))) = path else {
        return Err(not_found());
    };
    let webhook = plunk_domain::id::parse_id(&webhook).ok_or_else(not_found)?;
    let (webhook, _) = load(state, project, webhook).await?;
    let delivery = plunk_domain::id::parse_id(&delivery).ok_or_else(delivery_not_found)?;
    let (delivery, version) = state
        .store
        .webhooks()
        .get_delivery(project, webhook.id, delivery)
        .await?
        .ok_or_else(delivery_not_found)?;
    Ok((webhook, delivery, version))
}

/// A disabled webhook is never called (the worker fails its attempts), so a manual test or
/// retry would only end `FAILED`: refused up front instead.
fn require_enabled(webhook: &Webhook) -> Result<(), ApiError> {
    if webhook.enabled {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::WebhookDisabled,
        "The webhook is disabled; a disabled webhook is not called",
    ))
}

/// One delivery.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{deliveryId}", tag = "Webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("deliveryId" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = inline(DeliveryEnvelope))),
    security(("bearer" = [])))]
pub async fn read_delivery(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<DeliveryView>, ApiError> {
    let (_, delivery, _) = load_delivery(&state, auth.project.id, path).await?;
    Ok(Envelope::ok(DeliveryView::from(&delivery)))
}

/// Schedule one immediate extra attempt.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{deliveryId}/retry", tag = "Webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("deliveryId" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery, PENDING", body = inline(DeliveryEnvelope)),
        (status = 409, description = "WEBHOOK_DISABLED", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Envelope<DeliveryView>, ApiError> {
    let project = auth.project.id;
    let (webhook, mut delivery, version) = load_delivery(&state, project, path).await?;
    require_enabled(&webhook)?;
    outbound_allowance(&state, project).await?;
    // An ended delivery gets one attempt; a pending one keeps its schedule after this attempt.
    let one_off = delivery.status != DeliveryStatus::Pending;
    delivery.status = DeliveryStatus::Pending;
    delivery.next_attempt_at = Some(Timestamp::now());
    match state
        .store
        .webhooks()
        .save_delivery(project, &delivery, version)
        .await
    {
        Err(e) if e.is_condition_failed() => {
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "The delivery changed at the same time; retry",
            ))
        }
        other => other?,
    }
    queue_attempt(&state, project, &delivery, one_off).await?;
    Ok(Envelope::ok(DeliveryView::from(&delivery)))
}

/// Body of `POST /webhooks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookBody {
    /// http(s) URL, ≤ 2048 characters, no user-info, not a private address.
    url: String,
    /// 1-50 patterns: an exact name, a prefix ending in `.*`, or `*` (the default).
    #[schema(nullable = false)]
    events: Option<Vec<String>>,
    #[schema(max_length = 500, nullable = true)]
    description: Option<String>,
    #[schema(nullable = false)]
    enabled: Option<bool>,
}

/// Body of `PATCH /webhooks/:id`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookPatch {
    #[schema(nullable = false)]
    url: Option<String>,
    #[schema(nullable = false)]
    events: Option<Vec<String>>,
    #[schema(max_length = 500, nullable = true)]
    description: Option<String>,
    #[schema(nullable = false)]
    enabled: Option<bool>,
}

/// Body of `POST /webhooks/:id/rotate-secret`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct RotateBody {
    #[schema(nullable = false, minimum = 0, maximum = 604800)]
    expire_current_in_seconds: Option<i64>,
}

macro_rules! envelope {
    ($name:ident, $data:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(ToSchema)]
        #[allow(dead_code)]
        pub struct $name {
            success: bool,
            data: $data,
        }
    };
}

envelope!(
    CreatedEnvelope,
    CreatedWebhook,
    "Success envelope of a created webhook."
);
envelope!(
    WebhookEnvelope,
    WebhookView,
    "Success envelope of one webhook."
);
envelope!(DeletedEnvelope, Deleted, "Success envelope of a deletion.");
envelope!(RotatedEnvelope, Rotated, "Success envelope of a rotation.");
envelope!(
    DeliveryEnvelope,
    DeliveryView,
    "Success envelope of one delivery."
);

/// One page of webhooks.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct WebhookPageDoc {
    items: Vec<WebhookView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}
envelope!(
    WebhookListEnvelope,
    WebhookPageDoc,
    "Success envelope of a webhook list."
);

/// One page of deliveries.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct DeliveryPageDoc {
    items: Vec<DeliveryView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}
envelope!(
    DeliveryListEnvelope,
    DeliveryPageDoc,
    "Success envelope of a delivery list."
);
