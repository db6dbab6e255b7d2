//! `POST /v1/send`: validate everything, then write contacts and email
//! records and queue the emails at transactional priority. Rendering and delivery happen in the
//! send worker.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use plunk_domain::contact::DataChange;
use plunk_domain::email_record::{
    EmailContent, EmailRecord, EmailStatus, SendClass, SourceType, StoredAttachment,
    INLINE_BODY_LIMIT,
};
use plunk_domain::event::{Event, EventSource, SubscriptionSource};
use plunk_domain::project::{Project, Tracking};
use plunk_domain::send_request::{parse_send, NamedAddress, SendRequest};
use plunk_domain::template::{check_syntax, Template, TemplateType};
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::idempotency::{self, ReservedIds};
use plunk_http_kit::{Access, ApiError, AppState, AuthContext, ErrorCode, JsonObject};
use plunk_messaging::send_queues::SendJob;
use plunk_store::repo::contacts::ContactError;
use plunk_store::repo::domains::SenderRejection;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/send", guarded(&state, Access::Secret, post(send)))
        .merge(crate::track::routes(&state))
        .with_state(state)
}

/// One accepted recipient.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedEmail {
    contact: ContactRef,
    /// The email record id.
    #[schema(format = Uuid)]
    email: String,
    /// `PENDING` or `SUPPRESSED`.
    #[schema(pattern = "^(PENDING|SUPPRESSED)$")]
    status: String,
}

/// The contact a send went to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactRef {
    #[schema(format = Uuid)]
    id: String,
    email: String,
}

/// `data` of a successful send.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResult {
    emails: Vec<AcceptedEmail>,
    #[schema(format = DateTime)]
    timestamp: String,
}

/// Success envelope of `POST /v1/send`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SendEnvelope {
    success: bool,
    data: SendResult,
}

/// An address with an optional display name.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct NamedAddressDoc {
    /// 1–256 characters (a sender's: 1–100), no line breaks.
    #[schema(nullable = false, min_length = 1, max_length = 256)]
    name: Option<String>,
    #[schema(format = Email)]
    email: String,
}

/// An address, or `{name?, email}`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum AddressDoc {
    Address(String),
    Named(NamedAddressDoc),
}

/// One recipient, or an array of 1–50.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum RecipientsDoc {
    One(AddressDoc),
    Many(Vec<AddressDoc>),
}

/// How an attachment is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DispositionDoc {
    Attachment,
    Inline,
}

/// An attachment of `POST /v1/send`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AttachmentDoc {
    /// 1–255 characters; no control characters, `"`, `/` or `\`, no leading or trailing space or
    /// dot; not an extension the provider refuses.
    #[schema(min_length = 1, max_length = 255)]
    filename: String,
    /// Standard base64, at least one byte decoded.
    #[schema(min_length = 1, content_encoding = "base64")]
    content: String,
    /// `type/subtype`, parameters allowed.
    #[schema(min_length = 1, max_length = 255)]
    content_type: String,
    /// Default `attachment`; `inline` when only `contentId` is given.
    #[schema(nullable = false)]
    disposition: Option<DispositionDoc>,
    /// Required when inline; referenced as `cid:<contentId>`.
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    content_id: Option<String>,
}

/// Body of `POST /v1/send` (documentation; see the spec for every rule).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SendBody {
    /// An address, `{name?, email}`, or an array of 1–50 of either.
    to: RecipientsDoc,
    #[schema(nullable = false)]
    subject: Option<String>,
    /// HTML, Liquid.
    #[schema(nullable = false)]
    body: Option<String>,
    #[schema(nullable = false, format = Uuid)]
    template: Option<String>,
    /// An address or `{name?, email}`.
    #[schema(nullable = false)]
    from: Option<AddressDoc>,
    #[schema(nullable = false)]
    name: Option<String>,
    #[schema(nullable = false)]
    reply: Option<String>,
    #[schema(nullable = false)]
    subscribed: Option<bool>,
    #[schema(nullable = false)]
    headers: Option<std::collections::BTreeMap<String, String>>,
    #[schema(nullable = false)]
    data: Option<serde_json::Map<String, Value>>,
    /// At most 10, together at most 10,485,760 bytes decoded.
    #[schema(nullable = false, max_items = 10)]
    attachments: Option<Vec<AttachmentDoc>>,
    #[schema(nullable = false)]
    tracking: Option<bool>,
}

/// Send email to 1–50 recipients.
#[utoipa::path(post, path = "/v1/send", tag = "Public API", request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-256 printable ASCII characters")),
    responses(
        (status = 200, description = "Accepted", body = SendEnvelope),
        (status = 404, description = "TEMPLATE_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 409, description = "CONTACT_UNSUBSCRIBED or an idempotency conflict", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthContext,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Response {
    let project = auth.project.clone();
    idempotency::post(&state, (&auth).into(), &headers, "/v1/send", &body, |ids| {
        accept(&state, &project, &body, ids)
    })
    .await
}

/// Everything resolved before the first write.
struct Plan {
    request: SendRequest,
    template: Option<Template>,
    subject: String,
    body: String,
    from: EmailAddress,
    from_name: String,
    reply_to: Option<String>,
    marketing: bool,
    tracking: bool,
}

fn template_type_is_marketing(t: &Template) -> bool {
    matches!(t.template_type, TemplateType::Marketing)
}

async fn plan(
    state: &AppState,
    project: &Project,
    body: &serde_json::Map<String, Value>,
) -> Result<Plan, ApiError> {
    // 1. The whole body.
    let request = parse_send(body).map_err(ApiError::validation)?;
    // 2. The template.
    let template = match request.template {
        Some(id) => Some(
            state
                .store
                .templates()
                .get(project.id, id)
                .await?
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::TemplateNotFound, "No template with this id")
                        .with_details(json!({ "field": "template" }))
                })?,
        ),
        None => None,
    };
    let subject = request
        .subject
        .clone()
        .or_else(|| template.as_ref().map(|t| t.subject.clone()))
        .unwrap_or_default();
    let html = request
        .body
        .clone()
        .or_else(|| template.as_ref().map(|t| t.body.clone()))
        .unwrap_or_default();
    let reply_to = request.reply.as_ref().map(|r| r.to_string()).or_else(|| {
        template
            .as_ref()
            .and_then(|t| t.reply_to.as_ref().map(|r| r.to_string()))
    });
    // 3. The sender.
    let from = match (&request.from, &template) {
        (Some(f), _) => f.email.clone(),
        (None, Some(t)) => t.from.clone(),
        (None, None) => {
            return Err(ApiError::field(FieldError::new(
                "from",
                FieldCode::Required,
                "Required",
            )))
        }
    };
    let from_name = request
        .from
        .as_ref()
        .and_then(|f| f.name.clone())
        .or_else(|| request.name.clone())
        .or_else(|| template.as_ref().and_then(|t| t.from_name.clone()))
        .unwrap_or_else(|| project.name.clone());
    // 4. Liquid syntax of what will be rendered.
    let mut syntax = Vec::new();
    for (field, source) in [("subject", &subject), ("body", &html)] {
        if let Err(e) = check_syntax(source) {
            syntax.push(FieldError::new(
                field,
                FieldCode::TemplateSyntax,
                format!("line {}, column {}: {}", e.line, e.column, e.message),
            ));
        }
    }
    if !syntax.is_empty() {
        return Err(ApiError::validation(syntax));
    }
    // 5. The sender domain.
    if let Err((domain, reason)) = state
        .store
        .domains()
        .check_sender(project.id, &from)
        .await?
    {
        return Err(sender_error(domain, reason));
    }
    let marketing = template.as_ref().is_some_and(template_type_is_marketing);
    let tracking = request.tracking.unwrap_or(match project.tracking {
        Tracking::Enabled => true,
        Tracking::Disabled => false,
        Tracking::MarketingOnly => marketing,
    });
    Ok(Plan {
        request,
        template,
        subject,
        body: html,
        from,
        from_name,
        reply_to,
        marketing,
        tracking,
    })
}

/// The data change of one recipient: the request's `data`, and `name` when the recipient has one.
fn recipient_change(data: &DataChange, recipient: &NamedAddress) -> DataChange {
    let mut change = data.clone();
    if let Some(name) = recipient.name.as_deref().filter(|n| !n.is_empty()) {
        change.set("name", Value::String(name.to_owned()));
    }
    change
}

/// 403 `DOMAIN_NOT_VERIFIED` for a sender the project may not use.
pub fn sender_error(domain: String, reason: SenderRejection) -> ApiError {
    ApiError::new(
        ErrorCode::DomainNotVerified,
        format!("The sender domain {domain} is not verified in this project"),
    )
    .with_details(json!({ "domain": domain, "reason": reason }))
}

async fn accept(
    state: &AppState,
    project: &Project,
    body: &serde_json::Map<String, Value>,
    ids: ReservedIds,
) -> Result<SendResult, ApiError> {
    let plan = plan(state, project, body).await?;
    let contacts = state.store.contacts();
    let now = Timestamp::now();

    // 6. Per recipient, read-only: subscription after this request, suppression.
    // The contacts read here are what the upserts below start from (one read each, not two).
    let mut suppressed = Vec::with_capacity(plan.request.to.len());
    let mut current = Vec::with_capacity(plan.request.to.len());
    let mut refused = Vec::new();
    let mut merge_errors = Vec::new();
    for (i, r) in plan.request.to.iter().enumerate() {
        let existing = contacts.current(project.id, &r.email).await?;
        // The data merge each upsert below will make, tried first: a recipient whose contact
        // data would outgrow its limit refuses the whole request before anything is written.
        let mut merged = existing
            .contact()
            .map(|c| c.data.clone())
            .unwrap_or_default();
        if recipient_change(&plan.request.data, r)
            .apply(&mut merged)
            .is_err()
        {
            merge_errors.push(FieldError::new(
                "data",
                FieldCode::TooBig,
                format!(
                    "Merged into the contact of to[{i}] ({}), the data would exceed {} bytes",
                    r.email,
                    plunk_domain::contact::MAX_DATA_BYTES
                ),
            ));
        }
        let subscribed_after = plan
            .request
            .subscribed
            .or(existing.contact().map(|c| c.subscribed))
            .unwrap_or(false);
        if plan.marketing && !subscribed_after {
            refused.push(r.email.to_string());
        }
        // Eventually consistent: the worker checks again, consistently, before sending.
        suppressed.push(
            state
                .store
                .suppressions()
                .get_eventually(project.id, &r.email)
                .await?,
        );
        current.push(existing);
    }
    if !merge_errors.is_empty() {
        return Err(ApiError::validation(merge_errors));
    }
    if !refused.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ContactUnsubscribed,
            "A MARKETING template cannot be sent to unsubscribed contacts",
        )
        .with_details(json!({ "emails": refused })));
    }

    // 7. Side effects. Attachments are stored once per request and shared by its recipients.
    let attachment_root = format!("attachments/{}/{}", project.id, ids.id(0));
    let mut stored_attachments = Vec::with_capacity(plan.request.attachments.len());
    for (i, a) in plan.request.attachments.iter().enumerate() {
        let key = format!("{attachment_root}/{i}");
        state
            .blobs
            .put(&key, Bytes::from(a.content.clone()))
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "Attachment storage is unavailable",
                )
                .with_retry_after(1)
                .tap_log(&e)
            })?;
        stored_attachments.push(StoredAttachment {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            disposition: a.disposition.as_str().to_owned(),
            content_id: a.content_id.clone(),
            blob_key: key,
            size: a.content.len(),
        });
    }

    // A body too large for a table item is stored once, like the attachments.
    let (inline_body, body_blob) = if plan.body.len() > INLINE_BODY_LIMIT {
        let key = format!("bodies/{}/{}", project.id, ids.id(0));
        state
            .blobs
            .put(&key, Bytes::from(plan.body.clone().into_bytes()))
            .await
            .map_err(|e| {
                ApiError::new(ErrorCode::ServiceUnavailable, "Body storage is unavailable")
                    .with_retry_after(1)
                    .tap_log(&e)
            })?;
        (String::new(), Some(key))
    } else {
        (plan.body.clone(), None)
    };

    let mut accepted = Vec::with_capacity(plan.request.to.len());
    let mut jobs = Vec::new();
    let recipients = plan.request.to.iter().zip(suppressed).zip(current);
    for (i, ((r, suppression), existing)) in recipients.enumerate() {
        let change = recipient_change(&plan.request.data, r);
        let outcome = contacts
            .upsert_from(
                project.id,
                &r.email,
                existing,
                plan.request.subscribed,
                false,
                &change,
                SubscriptionSource::Send,
            )
            .await
            .map_err(|e| match e {
                // Checked above; should a concurrent write have grown the contact since, the
                // request is retryable (its Idempotency-Key keeps what was already written), never
                // a 4xx that would release the key with part of the request done.
                ContactError::Invalid(_) => ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "A contact changed while the request was written; retry it",
                )
                .with_retry_after(1),
                other => crate::contacts::contact_error(other),
            })?;
        let email_id = ids.id(i + 1);
        let status = if suppression.is_some() {
            EmailStatus::Suppressed
        } else {
            EmailStatus::Pending
        };
        let record = EmailRecord {
            id: email_id,
            contact_id: Some(outcome.contact.id),
            to: r.email.to_string(),
            to_name: r.name.clone(),
            from: plan.from.to_string(),
            from_name: plan.from_name.clone(),
            reply_to: plan.reply_to.clone(),
            subject: plan.subject.clone(),
            source_type: SourceType::Transactional,
            template_id: plan.template.as_ref().map(|t| t.id),
            campaign_id: None,
            workflow_id: None,
            workflow_execution_id: None,
            marketing: plan.marketing,
            tracking: plan.tracking,
            test: false,
            status,
            error: suppression.as_ref().map(|s| s.reason.as_str().to_owned()),
            attempts: 0,
            message_id: None,
            opens: 0,
            clicks: 0,
            bounce_type: None,
            bounce_sub_type: None,
            queued_at: (status == EmailStatus::Pending).then_some(now),
            sending_at: None,
            sent_at: None,
            delivered_at: None,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            delayed_at: None,
            failed_at: None,
            suppressed_at: (status == EmailStatus::Suppressed).then_some(now),
            created_at: now,
            updated_at: now,
        };
        let content = (status == EmailStatus::Pending).then(|| EmailContent {
            subject: plan.subject.clone(),
            body: inline_body.clone(),
            body_blob: body_blob.clone(),
            headers: plan.request.headers.clone(),
            attachments: stored_attachments.clone(),
            one_shot: plan.request.data.one_shot.clone(),
            template_type: plan.template.as_ref().map(|t| t.template_type),
        });
        let created = state
            .store
            .emails()
            .accept(project.id, &record, content.as_ref())
            .await?;
        if created && status == EmailStatus::Suppressed {
            let event = Event {
                id: Uuid::now_v7(),
                name: "email.suppressed".into(),
                contact_id: record.contact_id,
                contact_email: Some(record.to.clone()),
                email_id: Some(record.id),
                data: plunk_domain::email_record::event_data(
                    &record,
                    json!({ "suppressionReason": record.error }),
                ),
                source: EventSource::System,
                created_at: now,
            };
            state.store.events().record(project.id, &event).await?;
        }
        if status == EmailStatus::Pending {
            jobs.push(SendJob {
                project_id: project.id,
                email_id,
                class: SendClass::Transactional,
            });
        }
        accepted.push(AcceptedEmail {
            contact: ContactRef {
                id: outcome.contact.id.to_string(),
                email: outcome.contact.email.to_string(),
            },
            email: email_id.to_string(),
            status: status.as_str().to_owned(),
        });
    }
    // A failure here leaves PENDING records that the scheduler's sweep queues again.
    if let Err(e) = state.send_queues.enqueue(&jobs).await {
        tracing::warn!(error = %e, "enqueue failed; the sweep will queue these emails");
    }
    Ok(SendResult {
        emails: accepted,
        timestamp: now.to_string(),
    })
}

/// Logs the cause of an error that is mapped to a generic response.
trait TapLog {
    fn tap_log(self, cause: &dyn std::fmt::Display) -> Self;
}

impl TapLog for ApiError {
    fn tap_log(self, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, code = ?self.code, "dependency failed");
        self
    }
}
