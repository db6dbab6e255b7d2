//! OpenAPI pieces shared by every endpoint group: the error envelope schema and a modifier that
//! documents the common error responses (spec README §11 "Common errors") on every operation.

use crate::error::ErrorCode;
use plunk_domain::FieldCode;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::ToSchema;

/// One field problem inside a `VALIDATION_ERROR`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    /// Path with dots and `[index]`; `""` is the whole body.
    field: String,
    message: String,
    #[schema(value_type = String, example = "invalid_string")]
    code: FieldCode,
}

/// The `error` member of an error response.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ErrorBody {
    code: ErrorCode,
    message: String,
    status_code: u16,
    request_id: String,
    /// Present only for `VALIDATION_ERROR`.
    #[schema(nullable = false)]
    errors: Option<Vec<FieldErrorDoc>>,
    /// Machine-readable context, documented per code.
    #[schema(nullable = false)]
    details: Option<serde_json::Map<String, serde_json::Value>>,
    suggestion: String,
}

/// Every error response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    /// Always `false`.
    success: bool,
    error: ErrorBody,
    /// When the error was produced.
    timestamp: String,
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

/// Adds the common error responses to every operation: 404/405 everywhere, and to every
/// authenticated one the auth, key-type, disabled-project, body, validation, rate-limit and
/// server errors (an operation's own documented responses are kept).
pub fn add_common_errors(doc: &mut OpenApi, unauthenticated: &[&str]) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = unauthenticated.iter().any(|p| p == path);
        let ops: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops {
            let Some(op) = op.as_mut() else { continue };
            let mut add = |status: &str, text: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(text).into());
            };
            add("404", "NOT_FOUND or the resource's own not-found code");
            add("405", "METHOD_NOT_ALLOWED");
            if public {
                continue;
            }
            add("400", "INVALID_REQUEST_BODY or INVALID_CURSOR");
            add("401", "MISSING_AUTH or INVALID_API_KEY");
            add("403", "INVALID_KEY_TYPE or PROJECT_DISABLED");
            add("413", "PAYLOAD_TOO_LARGE");
            add("422", "VALIDATION_ERROR");
            add("429", "RATE_LIMIT_EXCEEDED");
            add("500", "INTERNAL_SERVER_ERROR");
            add("503", "SERVICE_UNAVAILABLE");
        }
    }
}
