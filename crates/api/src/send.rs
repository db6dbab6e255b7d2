//! `POST /v1/send`: validate everything, then write contacts and email
//! records and queue the emails at transactional priority. Rendering and delivery happen in the
//! send worker.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use plunk_domain::contact::DataChange;
use plunk_domain::email_record::{Origin, SendClass};
use plunk_domain::project::{Project, Tracking};
use plunk_domain::send_request::{parse_send, NamedAddress, SendRequest};
use plunk_domain::template::{Template, TemplateType};
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::idempotency::{self, ReservedIds};
use plunk_http_kit::{Access, ApiError, AppState, AuthContext, ErrorCode, JsonObject};
use plunk_store::repo::domains::SenderRejection;
use plunk_worker::accept::{AcceptError, Acceptor, Message, Recipient, RecipientContact};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

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
    let message = Message {
        subject: plan.subject,
        body: plan.body,
        from: plan.from,
        from_name: plan.from_name,
        reply_to: plan.reply_to,
        headers: plan.request.headers.clone(),
        attachments: plan.request.attachments.clone(),
        one_shot: plan.request.data.one_shot.clone(),
        event: serde_json::Map::new(),
        template: plan.template.as_ref().map(|t| (t.id, t.template_type)),
        marketing: plan.marketing,
        tracking: plan.tracking,
        test: false,
        origin: Origin::Transactional,
        class: SendClass::Transactional,
        content_root: ids.id(0),
        content_of_campaign: None,
    };
    let recipients = plan
        .request
        .to
        .iter()
        .enumerate()
        .map(|(i, r)| Recipient {
            email_id: ids.id(i + 1),
            contact: RecipientContact::Upsert {
                address: r.clone(),
                change: recipient_change(&plan.request.data, r),
                subscribed: plan.request.subscribed,
            },
        })
        .collect();
    let acceptor = Acceptor {
        store: state.store.clone(),
        blobs: state.blobs.clone(),
        queues: state.send_queues.clone(),
    };
    let accepted = acceptor
        .accept(project.id, &message, recipients)
        .await
        .map_err(accept_error)?;
    Ok(SendResult {
        emails: accepted
            .into_iter()
            .map(|a| AcceptedEmail {
                contact: ContactRef {
                    // /v1/send upserts a contact for every recipient.
                    id: a.contact_id.map(|id| id.to_string()).unwrap_or_default(),
                    email: a.contact_email,
                },
                email: a.email_id.to_string(),
                status: a.status.as_str().to_owned(),
            })
            .collect(),
        timestamp: Timestamp::now().to_string(),
    })
}

/// The envelope of an accept step error (the same codes `/v1/send` always answered with).
pub fn accept_error(e: AcceptError) -> ApiError {
    match e {
        AcceptError::Invalid(errors) => ApiError::validation(errors),
        AcceptError::SenderNotVerified { domain, reason } => sender_error(domain, reason),
        AcceptError::Unsubscribed(emails) => ApiError::new(
            ErrorCode::ContactUnsubscribed,
            "A MARKETING template cannot be sent to unsubscribed contacts",
        )
        .with_details(json!({ "emails": emails })),
        AcceptError::BlobUnavailable { what } => ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("{what} storage is unavailable"),
        )
        .with_retry_after(1),
        // Checked before the first write; should a concurrent write have grown the contact
        // since, the request is retryable (its Idempotency-Key keeps what was already written),
        // never a 4xx that would release the key with part of the request done.
        AcceptError::ContactChanged => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "A contact changed while the request was written; retry it",
        )
        .with_retry_after(1),
        AcceptError::Contact(e) => crate::contacts::contact_error(e),
        AcceptError::Store(e) => e.into(),
    }
}
