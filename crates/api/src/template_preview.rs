//! `POST /templates/preview`: renders a subject and body exactly as the
//! send worker would — the same engine, escaping and bounds, the footer of MARKETING mail — for a
//! contact or for given data, and stores or sends nothing.
//!
//! The hosted-page links point at `https://preview.invalid/…` placeholders: a preview has no email
//! to sign a token for. A render that fails (a runtime error or a render bound) is
//! 422 with code `template_render` on the failing field.

use axum::extract::State;
use plunk_domain::contact::Contact;
use plunk_domain::email_record::EmailContent;
use plunk_domain::page_token::HostedUrls;
use plunk_domain::template::{check_syntax, TemplateType, MAX_BODY_BYTES, MAX_SUBJECT_CHARS};
use plunk_domain::validation::Fields;
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::{ApiError, AppState, AuthContext, Envelope, JsonObject};
use plunk_worker::render::Part;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where the placeholder hosted-page links point.
pub const PLACEHOLDER_BASE: &str = "https://preview.invalid";
/// The address of a preview made from `data` without an `email`.
pub const PREVIEW_ADDRESS: &str = "preview@example.com";

/// Body of `POST /templates/preview`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct PreviewBody {
    /// Liquid; 1–998 characters, no line breaks.
    #[schema(min_length = 1, max_length = 998)]
    subject: String,
    /// HTML with Liquid; at most 524,288 bytes.
    #[schema(min_length = 1)]
    body: String,
    /// Default `MARKETING` (adds the unsubscribe footer).
    #[schema(nullable = false, rename = "type")]
    template_type: Option<crate::templates::TemplateTypeDoc>,
    /// Render for this contact (its data and address). Not together with `data`.
    #[schema(nullable = false, format = Uuid)]
    contact_id: Option<String>,
    /// Render with this object as contact data (`email` defaults to preview@example.com).
    #[schema(nullable = false)]
    data: Option<Map<String, Value>>,
}

/// A rendered preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    subject: String,
    html: String,
    text: String,
}

/// Who the preview is for.
enum Audience {
    Contact(Uuid),
    Data(Contact),
}

/// A validated preview request.
struct PreviewRequest {
    subject: String,
    body: String,
    template_type: TemplateType,
    audience: Audience,
}

fn parse(body: &Map<String, Value>) -> Result<PreviewRequest, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let subject = fields
        .required_string("subject", 1, MAX_SUBJECT_CHARS)
        .map(str::to_owned);
    if subject.as_deref().is_some_and(|s| s.contains(['\r', '\n'])) {
        fields.error(
            "subject",
            FieldCode::InvalidString,
            "Must not contain line breaks",
        );
    }
    let html = fields
        .required_string("body", 1, usize::MAX)
        .map(str::to_owned);
    if html.as_ref().is_some_and(|b| b.len() > MAX_BODY_BYTES) {
        fields.error(
            "body",
            FieldCode::TooBig,
            format!("Must be at most {MAX_BODY_BYTES} bytes"),
        );
    }
    let template_type = match fields.optional_string("type", 0, usize::MAX) {
        Some(raw) => TemplateType::parse(raw).or_else(|| {
            fields.error(
                "type",
                FieldCode::InvalidEnumValue,
                "Expected one of TRANSACTIONAL, MARKETING, HEADLESS",
            );
            None
        }),
        None => Some(TemplateType::Marketing),
    };
    let contact = match fields.optional_string("contactId", 0, usize::MAX) {
        Some(raw) => plunk_domain::id::parse_id(raw).or_else(|| {
            fields.error("contactId", FieldCode::InvalidString, "Expected a UUID");
            None
        }),
        None => None,
    };
    let data = fields.optional_object("data").cloned();
    let email = data.as_ref().and_then(|d| d.get("email"));
    let address = match email {
        None => EmailAddress::parse(PREVIEW_ADDRESS).ok(),
        Some(Value::String(raw)) => EmailAddress::parse(raw).ok().or_else(|| {
            fields.error(
                "data.email",
                FieldCode::InvalidString,
                "Invalid email address",
            );
            None
        }),
        Some(_) => {
            fields.error("data.email", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    if contact.is_some() && data.is_some() {
        fields.error(
            "data",
            FieldCode::Custom,
            "Give either contactId or data, not both",
        );
    }
    let mut errors = fields.finish().err().unwrap_or_default();
    for (field, source) in [("subject", &subject), ("body", &html)] {
        if let Some(Err(e)) = source.as_deref().map(check_syntax) {
            errors.push(FieldError::new(
                field,
                FieldCode::TemplateSyntax,
                e.to_string(),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let audience = match (contact, address) {
        (Some(id), _) => Audience::Contact(id),
        (None, Some(address)) => Audience::Data(pseudo_contact(address, data.unwrap_or_default())),
        (None, None) => {
            return Err(vec![FieldError::new(
                "data.email",
                FieldCode::InvalidString,
                "Invalid email address",
            )])
        }
    };
    match (subject, html, template_type) {
        (Some(subject), Some(body), Some(template_type)) => Ok(PreviewRequest {
            subject,
            body,
            template_type,
            audience,
        }),
        _ => Err(vec![FieldError::new(
            "",
            FieldCode::Required,
            "subject and body are required",
        )]),
    }
}

/// A contact made from preview data: `address`, subscribed, with `data`.
fn pseudo_contact(address: EmailAddress, data: Map<String, Value>) -> Contact {
    let now = Timestamp::now();
    Contact {
        id: Uuid::nil(),
        email: address,
        subscribed: true,
        data,
        created_at: now,
        updated_at: now,
    }
}

/// Render a subject and body without sending or storing anything.
#[utoipa::path(post, path = "/templates/preview", tag = "Templates", request_body = PreviewBody,
    responses(
        (status = 200, description = "The rendered subject, HTML and text", body = inline(PreviewEnvelope)),
        (status = 404, description = "CONTACT_NOT_FOUND", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR, including template_syntax and template_render", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Preview>, ApiError> {
    let request = parse(&body).map_err(ApiError::validation)?;
    let project = &auth.project;
    let contact = match request.audience {
        Audience::Contact(id) => state
            .store
            .contacts()
            .get(project.id, id)
            .await?
            .ok_or_else(crate::contacts::not_found)?,
        Audience::Data(contact) => contact,
    };
    let content = EmailContent {
        subject: request.subject,
        body: request.body,
        body_blob: None,
        headers: Vec::new(),
        attachments: Vec::new(),
        one_shot: Map::new(),
        template_type: Some(request.template_type),
        event: Default::default(),
        campaign_content: None,
    };
    let urls = HostedUrls::new(PLACEHOLDER_BASE, "preview");
    let to = contact.email.to_string();
    // Rendering is bounded (250 ms at most) and pure: run it off the async workers.
    let rendered = tokio::task::spawn_blocking({
        let project = project.clone();
        move || {
            let rendered = plunk_worker::render::render_email(
                &project,
                Some(&contact),
                &to,
                &content,
                Some(&urls),
            )?;
            let marketing = request.template_type != TemplateType::Transactional;
            let finished =
                plunk_worker::render::finish(&rendered, marketing, &content, Some(&urls));
            Ok::<_, plunk_worker::render::RenderFailure>(Preview {
                subject: plunk_domain::email_record::clean_subject(&rendered.subject),
                html: finished.html,
                text: finished.text,
            })
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    rendered.map(Envelope::ok).map_err(|failure| {
        let field = match failure.part {
            Part::Subject => "subject",
            Part::Body => "body",
        };
        ApiError::field(FieldError::new(
            field,
            FieldCode::TemplateRender,
            failure.error.message,
        ))
    })
}

/// Success envelope of the preview.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PreviewEnvelope {
    success: bool,
    data: Preview,
}
