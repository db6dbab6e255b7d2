//! The OpenAPI 3.1 document, generated from the handlers' annotations and types.

use plunk_http_kit::openapi::{add_common_errors, ErrorBody, ErrorEnvelope, FieldErrorDoc};
use plunk_http_kit::ErrorCode;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Plunk-compatible email platform API", description = "Transactional email, contacts, events and more. Every response uses the envelope {success, data} or {success:false, error}."),
    paths(
        crate::system::health,
        crate::system::openapi_json,
        crate::contacts::list,
        crate::contacts::upsert,
        crate::contacts::read,
        crate::contacts::update,
        crate::contacts::remove,
        crate::contacts::lookup,
        crate::contacts::events,
        crate::domains::list,
        crate::domains::create,
        crate::domains::read,
        crate::domains::verify,
        crate::domains::remove,
        crate::send::send,
        crate::track::track,
        crate::emails::list,
        crate::emails::read,
        crate::templates::list,
        crate::templates::create,
        crate::templates::read,
        crate::templates::update,
        crate::templates::remove,
        crate::templates::duplicate,
        crate::templates::usage,
        crate::template_preview::preview,
        crate::events::list,
        crate::events::names,
        crate::events::stats,
        crate::events::read,
        crate::events::usage,
        crate::events::remove,
        crate::suppressions::list,
        crate::suppressions::create,
        crate::suppressions::remove,
        crate::webhooks::create,
        crate::webhooks::list,
        crate::webhooks::read,
        crate::webhooks::update,
        crate::webhooks::remove,
        crate::webhooks::rotate_secret,
        crate::webhooks::test,
        crate::webhooks::deliveries,
        crate::webhooks::read_delivery,
        crate::webhooks::retry_delivery,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, FieldErrorDoc, ErrorCode)),
    tags((name = "System"), (name = "Contacts"), (name = "Domains"), (name = "Public API"), (name = "Emails"), (name = "Templates"), (name = "Events"), (name = "Suppressions"), (name = "Webhooks"))
)]
struct ApiDoc;

/// The whole document, with the bearer scheme and the common error responses added.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    add_common_errors(&mut doc, &["/health", "/openapi.json"]);
    doc
}
