//! `POST /v1/track`: record an event for a contact, creating or updating
//! the contact on the way. Browsers call it with the public key (CORS is the pipeline's, for every
//! `/v1/*` path). What follows an event (counters, webhooks) runs from the change feed, so the
//! response never waits for it and a failure there never changes it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use plunk_domain::contact::DataChange;
use plunk_domain::event::{
    event_data_from_input, event_name_problem, is_reserved_event_name, Event, EventSource,
    SubscriptionSource,
};
use plunk_domain::project::{KeyType, Project};
use plunk_domain::validation::Fields;
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::idempotency::{self, ReservedIds};
use plunk_http_kit::{Access, ApiError, AppState, AuthContext, JsonObject};
use plunk_store::repo::events::{NameAdmission, MAX_EVENT_NAMES};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The route of this endpoint (mounted with `/v1/send` in the public API group).
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new().route(
        "/v1/track",
        guarded(state, Access::PublicOrSecret, post(track)),
    )
}

/// `data` of a tracked event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackResult {
    /// The contact id.
    #[schema(format = Uuid)]
    contact: String,
    /// The event id.
    #[schema(format = Uuid)]
    event: String,
    /// When the event was created.
    #[schema(value_type = String, format = DateTime)]
    timestamp: Timestamp,
}

/// Success envelope of `POST /v1/track`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TrackEnvelope {
    success: bool,
    data: TrackResult,
}

/// Body of `POST /v1/track`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TrackBody {
    /// 1-255 characters after trimming, no control characters or '/'; not a reserved name.
    event: String,
    #[schema(format = Email)]
    email: String,
    /// New contacts: default true. Existing contacts: applied only when given with the secret
    /// key (a public key never changes an existing contact's subscription).
    #[schema(nullable = false)]
    subscribed: Option<bool>,
    /// Contact data (persistent values merged into the contact; all values stored on the event).
    #[schema(nullable = false)]
    data: Option<Map<String, Value>>,
}

/// A validated track request.
struct TrackRequest {
    name: String,
    email: EmailAddress,
    subscribed: Option<bool>,
    change: DataChange,
    event_data: Map<String, Value>,
}

fn parse(body: &Map<String, Value>) -> Result<TrackRequest, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let name = fields
        .required_string("event", 0, usize::MAX)
        .map(|n| n.trim().to_owned());
    if let Some(name) = &name {
        if let Some(problem) = event_name_problem(name) {
            fields.error("event", FieldCode::InvalidString, problem);
        } else if is_reserved_event_name(name) {
            fields.error(
                "event",
                FieldCode::ReservedEvent,
                "Cannot track reserved system event",
            );
        }
    }
    let email = fields.required_email("email");
    let subscribed = fields.optional_bool("subscribed");
    let data = fields.optional_object("data");
    let change = match data.map(DataChange::parse) {
        Some(Err(errors)) => {
            for e in errors {
                fields.push(e);
            }
            None
        }
        Some(Ok(change)) => Some(change),
        None => Some(DataChange::default()),
    };
    fields.finish()?;
    match (name, email, change) {
        (Some(name), Some(email), Some(change)) => Ok(TrackRequest {
            name,
            email,
            subscribed,
            change,
            event_data: data.map(event_data_from_input).unwrap_or_default(),
        }),
        // `finish` reports every missing part; this is unreachable in practice.
        _ => Err(vec![FieldError::new(
            "event",
            FieldCode::Required,
            "Required",
        )]),
    }
}

/// Track an event for a contact.
#[utoipa::path(post, path = "/v1/track", tag = "Public API", request_body = TrackBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-256 printable ASCII characters")),
    responses(
        (status = 200, description = "Event stored", body = TrackEnvelope),
        (status = 409, description = "An idempotency conflict", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn track(
    State(state): State<AppState>,
    auth: AuthContext,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Response {
    let project = auth.project.clone();
    let key_type = auth.key_type;
    idempotency::post(
        &state,
        (&auth).into(),
        &headers,
        "/v1/track",
        &body,
        |ids| accept(&state, &project, key_type, &body, ids),
    )
    .await
}

async fn accept(
    state: &AppState,
    project: &Project,
    key_type: KeyType,
    body: &Map<String, Value>,
    ids: ReservedIds,
) -> Result<TrackResult, ApiError> {
    let request = parse(body).map_err(ApiError::validation)?;
    let admission = state
        .store
        .events()
        .admit_name(project.id, &request.name)
        .await?;
    if admission == NameAdmission::LimitReached {
        return Err(ApiError::field(FieldError::new(
            "event",
            FieldCode::TooBig,
            format!("Event name limit reached: a project holds at most {MAX_EVENT_NAMES} names"),
        )));
    }
    let contacts = state.store.contacts();
    let (email, change) = (&request.email, &request.change);
    let source = SubscriptionSource::Track;
    // A public key never changes an existing contact's subscription.
    let outcome = match key_type {
        KeyType::Secret => {
            contacts
                .upsert(project.id, email, request.subscribed, change, source)
                .await
        }
        KeyType::Public => {
            contacts
                .upsert_keeping_subscription(project.id, email, request.subscribed, change, source)
                .await
        }
    }
    .map_err(crate::contacts::contact_error)?;
    let event = Event {
        // A retried request (same Idempotency-Key after a 5xx) rewrites the same event.
        id: ids.id(0),
        name: request.name,
        contact_id: Some(outcome.contact.id),
        contact_email: Some(outcome.contact.email.to_string()),
        email_id: None,
        data: request.event_data,
        source: EventSource::Api,
        created_at: Timestamp::now(),
    };
    state.store.events().record(project.id, &event).await?;
    Ok(TrackResult {
        contact: outcome.contact.id.to_string(),
        event: event.id.to_string(),
        timestamp: event.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(body: Value) -> Vec<(String, FieldCode)> {
        match parse(body.as_object().unwrap()) {
            Ok(_) => vec![],
            Err(errors) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    #[test]
    fn every_rule_is_reported_at_once() {
        let errors =
            errors_of(json!({"event": "email.open", "email": "nope", "subscribed": "yes"}));
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["event", "email", "subscribed"]);
        assert_eq!(errors[0].1, FieldCode::ReservedEvent);
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert!(errors_of(json!({"event": "  ", "email": "a@b.co"}))
            .iter()
            .any(|(f, _)| f == "event"));
        assert!(errors_of(json!({"event": "a/b", "email": "a@b.co"}))
            .iter()
            .any(|(f, _)| f == "event"));
        let ok = parse(
            json!({"event": " signed_up ", "email": "A@B.co"})
                .as_object()
                .unwrap(),
        )
        .ok()
        .unwrap();
        assert_eq!(ok.name, "signed_up");
        assert_eq!(ok.email.as_str(), "a@b.co");
    }
}
