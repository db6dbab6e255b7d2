//! The OpenAPI 3.1 document, generated from the handlers' annotations and types.

use plunk_http_kit::openapi::{add_common_errors, ErrorBody, ErrorEnvelope, FieldErrorDoc};
use plunk_http_kit::ErrorCode;
use utoipa::openapi::path::{Operation, PathItem};
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
        crate::segments::list,
        crate::segments::create,
        crate::segments::read,
        crate::segments::update,
        crate::segments::remove,
        crate::segments::contacts,
        crate::segments::add_members,
        crate::segments::remove_members,
        crate::segments::compute,
        crate::segments::refresh,
        crate::campaigns::list,
        crate::campaigns::create,
        crate::campaigns::read,
        crate::campaigns::put,
        crate::campaigns::update,
        crate::campaigns::remove,
        crate::campaigns::send,
        crate::campaigns::cancel,
        crate::campaigns::test,
        crate::campaigns::duplicate,
        crate::campaigns::stats,
        crate::workflows::list,
        crate::workflows::create,
        crate::workflows::read,
        crate::workflows::update,
        crate::workflows::remove,
        crate::workflows::graph_edits::add_step,
        crate::workflows::graph_edits::update_step,
        crate::workflows::graph_edits::remove_step,
        crate::workflows::graph_edits::add_transition,
        crate::workflows::graph_edits::remove_transition,
        crate::workflows::graph_edits::insert_step,
        crate::workflows::executions::start_execution,
        crate::workflows::executions::list_executions,
        crate::workflows::executions::read_execution,
        crate::workflows::executions::cancel_execution,
        crate::workflows::executions::remove_execution,
        crate::workflows::executions::cancel_all_executions,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, FieldErrorDoc, ErrorCode)),
    tags((name = "System"), (name = "Contacts"), (name = "Domains"), (name = "Public API"), (name = "Emails"), (name = "Templates"), (name = "Events"), (name = "Suppressions"), (name = "Webhooks"), (name = "Segments"), (name = "Campaigns"), (name = "Workflows"))
)]
struct ApiDoc;

/// The whole document, with the bearer scheme, the common error responses and operation ids a
/// client generator can use.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    add_common_errors(&mut doc, &["/health", "/openapi.json"]);
    name_operations(&mut doc);
    doc
}

/// The document as served: [`document`] with the links between operations, added to the JSON
/// (utoipa 5 writes a link's `operationId` as `operation_id`).
pub fn document_json() -> serde_json::Value {
    let mut json = serde_json::to_value(document()).unwrap_or_default();
    add_links(&mut json);
    json
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> [(&'static str, &mut Option<Operation>); 5] {
    [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ]
}

/// The group a path belongs to: its first segment, `public` for `/v1/*`, `system` for the
/// system endpoints.
fn group(path: &str) -> &str {
    match path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
    {
        "v1" => "public",
        "health" | "openapi.json" => "system",
        first => first,
    }
}

/// `rotate_secret` → `rotateSecret`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Operation ids as `<group>.<handler>` (`contacts.list`, `webhooks.rotateSecret`): unique, and
/// what client generators turn into method names.
fn name_operations(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let group = group(path).to_owned();
        for (_, operation) in operations(item) {
            if let Some(op) = operation.as_mut() {
                let handler = op.operation_id.clone().unwrap_or_default();
                op.operation_id = Some(format!("{group}.{}", camel(&handler)));
            }
        }
    }
}

/// One link: `(link name, operation id, parameter, value)`.
type LinkSpec = (&'static str, &'static str, &'static str, &'static str);

/// Links from the responses that create or name a resource to the operations that take its id
/// (OpenAPI 3.1 §4.8.20): what a client, or a stateful test, follows from one call to the next.
/// `(path, method, status, links)`.
const LINKS: &[(&str, &str, &str, &[LinkSpec])] = &[
    (
        "/contacts",
        "post",
        "201",
        &[
            (
                "GetContact",
                "contacts.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateContact",
                "contacts.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "ContactEvents",
                "contacts.events",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteContact",
                "contacts.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/domains",
        "post",
        "201",
        &[
            ("GetDomain", "domains.read", "id", "$response.body#/data/id"),
            (
                "VerifyDomain",
                "domains.verify",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteDomain",
                "domains.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/templates",
        "post",
        "201",
        &[
            (
                "GetTemplate",
                "templates.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateTemplate",
                "templates.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DuplicateTemplate",
                "templates.duplicate",
                "id",
                "$response.body#/data/id",
            ),
            (
                "TemplateUsage",
                "templates.usage",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteTemplate",
                "templates.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/campaigns",
        "post",
        "201",
        &[
            (
                "GetCampaign",
                "campaigns.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateCampaign",
                "campaigns.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "SendCampaign",
                "campaigns.send",
                "id",
                "$response.body#/data/id",
            ),
            (
                "CancelCampaign",
                "campaigns.cancel",
                "id",
                "$response.body#/data/id",
            ),
            (
                "TestCampaign",
                "campaigns.test",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DuplicateCampaign",
                "campaigns.duplicate",
                "id",
                "$response.body#/data/id",
            ),
            (
                "CampaignStats",
                "campaigns.stats",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteCampaign",
                "campaigns.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/workflows",
        "post",
        "201",
        &[
            (
                "GetWorkflow",
                "workflows.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateWorkflow",
                "workflows.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "AddStep",
                "workflows.addStep",
                "id",
                "$response.body#/data/id",
            ),
            (
                "AddTransition",
                "workflows.addTransition",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteWorkflow",
                "workflows.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/segments",
        "post",
        "201",
        &[
            (
                "GetSegment",
                "segments.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateSegment",
                "segments.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "SegmentContacts",
                "segments.contacts",
                "id",
                "$response.body#/data/id",
            ),
            (
                "AddSegmentMembers",
                "segments.addMembers",
                "id",
                "$response.body#/data/id",
            ),
            (
                "ComputeSegment",
                "segments.compute",
                "id",
                "$response.body#/data/id",
            ),
            (
                "RefreshSegment",
                "segments.refresh",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteSegment",
                "segments.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/suppressions",
        "post",
        "201",
        &[(
            "DeleteSuppression",
            "suppressions.remove",
            "id",
            "$response.body#/data/id",
        )],
    ),
    (
        "/webhooks",
        "post",
        "201",
        &[
            (
                "GetWebhook",
                "webhooks.read",
                "id",
                "$response.body#/data/id",
            ),
            (
                "UpdateWebhook",
                "webhooks.update",
                "id",
                "$response.body#/data/id",
            ),
            (
                "TestWebhook",
                "webhooks.test",
                "id",
                "$response.body#/data/id",
            ),
            (
                "WebhookDeliveries",
                "webhooks.deliveries",
                "id",
                "$response.body#/data/id",
            ),
            (
                "RotateWebhookSecret",
                "webhooks.rotateSecret",
                "id",
                "$response.body#/data/id",
            ),
            (
                "DeleteWebhook",
                "webhooks.remove",
                "id",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/webhooks/{id}/test",
        "post",
        "200",
        &[
            (
                "GetDelivery",
                "webhooks.readDelivery",
                "deliveryId",
                "$response.body#/data/id",
            ),
            (
                "RetryDelivery",
                "webhooks.retryDelivery",
                "deliveryId",
                "$response.body#/data/id",
            ),
        ],
    ),
    (
        "/v1/track",
        "post",
        "200",
        &[
            (
                "GetEvent",
                "events.read",
                "id",
                "$response.body#/data/event",
            ),
            (
                "GetTrackedContact",
                "contacts.read",
                "id",
                "$response.body#/data/contact",
            ),
        ],
    ),
    (
        "/v1/send",
        "post",
        "200",
        &[
            (
                "GetEmail",
                "emails.read",
                "id",
                "$response.body#/data/emails/0/email",
            ),
            (
                "GetRecipient",
                "contacts.read",
                "id",
                "$response.body#/data/emails/0/contact/id",
            ),
        ],
    ),
];

fn add_links(doc: &mut serde_json::Value) {
    for (path, method, status, links) in LINKS {
        let response = &mut doc["paths"][*path][*method]["responses"][*status];
        if !response.is_object() {
            continue;
        }
        for (name, operation_id, parameter, value) in links.iter() {
            let mut parameters = serde_json::json!({ *parameter: value });
            // The webhook's own id travels along to its delivery operations.
            if path.starts_with("/webhooks/{id}/") {
                parameters["id"] = "$request.path.id".into();
            }
            response["links"][*name] = serde_json::json!({
                "operationId": operation_id,
                "parameters": parameters,
            });
        }
    }
}
