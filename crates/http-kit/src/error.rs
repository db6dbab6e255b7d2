//! Every error code of the API, its status and its fixed suggestion, and the `ApiError`
//! that handlers return. Rendering into the envelope happens in `pipeline`, which knows the
//! request id.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use plunk_domain::FieldError;
use serde::Serialize;
use serde_json::Value;

macro_rules! error_codes {
    ($( $variant:ident = $status:literal, $suggestion:literal; )*) => {
        /// A specific error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// Every code, in the order of the spec's table.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The HTTP status that goes with the code.
            pub fn status(self) -> StatusCode {
                match self { $( ErrorCode::$variant => StatusCode::from_u16($status).expect("valid status"), )* }
            }

            /// The fixed suggestion text of the code.
            pub fn suggestion(self) -> &'static str {
                match self { $( ErrorCode::$variant => $suggestion, )* }
            }
        }
    };
}

error_codes! {
    InvalidRequestBody = 400, "Send a JSON object with Content-Type: application/json.";
    InvalidCursor = 400, "Restart from the first page without a cursor, using the same filters for every page.";
    InvalidIdempotencyKey = 400, "Use 1–256 printable ASCII characters, e.g. a UUID.";
    MissingAuth = 401, "Add the header Authorization: Bearer <your key>.";
    InvalidApiKey = 401, "Check the key for typos or ask an administrator for a current key.";
    InvalidKeyType = 403, "Use the secret key (sk_) from server-side code.";
    ProjectDisabled = 403, "The project is disabled; contact the administrator. Read endpoints still work.";
    DomainNotVerified = 403, "Add the domain with POST /domains, publish its DNS records and verify it.";
    NotFound = 404, "Check the method and path against the API reference.";
    ContactNotFound = 404, "Check the contact id, or look contacts up by email.";
    TemplateNotFound = 404, "Check the template id with GET /templates.";
    CampaignNotFound = 404, "Check the campaign id with GET /campaigns.";
    SegmentNotFound = 404, "Check the segment id with GET /segments.";
    WorkflowNotFound = 404, "Check the workflow id with GET /workflows.";
    WorkflowStepNotFound = 404, "Fetch the workflow to see its current steps.";
    WorkflowTransitionNotFound = 404, "Fetch the workflow to see its current transitions.";
    ExecutionNotFound = 404, "List the workflow's executions to find the id.";
    EventNotFound = 404, "Check the id or name with GET /events/names.";
    EmailNotFound = 404, "Check the id returned by the send call.";
    DomainNotFound = 404, "Check the id with GET /domains.";
    SuppressionNotFound = 404, "Check the id with GET /suppressions.";
    WebhookNotFound = 404, "Check the id with GET /webhooks.";
    WebhookDeliveryNotFound = 404, "List deliveries to find the id.";
    MethodNotAllowed = 405, "Use one of the methods in the Allow header.";
    MalformedRequest = 400, "Send a well-formed HTTP/1.1 request.";
    UriTooLong = 414, "Shorten the URL: send large values in a JSON body instead of the query.";
    HeadersTooLarge = 431, "Send fewer or smaller headers.";
    ContactUnsubscribed = 409, "Send with a TRANSACTIONAL template, or only to subscribed contacts.";
    ContactEmailTaken = 409, "Update or delete the other contact first.";
    TemplateInUse = 409, "Remove the template from those steps first (GET /templates/:id/usage).";
    CampaignInvalidState = 409, "Check the campaign status; duplicate it to get an editable draft.";
    SegmentInUse = 409, "Remove the references first.";
    SegmentTypeMismatch = 409, "Members can be edited only on STATIC segments; compute only applies to DYNAMIC ones.";
    SegmentSlugTaken = 409, "Pass a different slug.";
    WorkflowLocked = 409, "Disable the workflow and wait, or cancel all executions, then retry.";
    WorkflowDisabled = 409, "Enable the workflow first.";
    WorkflowReentryNotAllowed = 409, "Enable allowReentry or pick another contact.";
    ExecutionNotActive = 409, "No action needed; the execution has finished.";
    EventInUse = 409, "Remove the name from those segments and workflows first.";
    DomainAlreadyExists = 409, "Use the existing domain entry or pick another domain.";
    DomainInUse = 409, "Change those senders first.";
    WebhookLimitReached = 409, "Delete an unused webhook.";
    WebhookDisabled = 409, "Enable the webhook first (PATCH /webhooks/:id with {\"enabled\": true}), then retry.";
    IdempotencyKeyReused = 409, "Use a new key for a different request.";
    IdempotencyKeyInProgress = 409, "Wait a moment and retry with the same key.";
    PayloadTooLarge = 413, "Reduce the body size, e.g. fewer or smaller attachments.";
    ValidationError = 422, "Fix the fields listed in errors and retry.";
    RateLimitExceeded = 429, "Wait Retry-After seconds, then retry with exponential back-off.";
    InternalServerError = 500, "Retry later with the same Idempotency-Key; report the requestId if it persists.";
    ExternalServiceError = 502, "Retry later; report the requestId if it persists.";
    ServiceUnavailable = 503, "Retry after the indicated delay.";
}

/// An error response in the making: code, message and the optional parts of the error envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// Boxed to keep `Result<_, ApiError>` small on the happy path.
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and a human-readable message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            errors: Vec::new(),
            details: None,
            retry_after: None,
        }
    }

    /// 422 `VALIDATION_ERROR` listing every field error.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(ErrorCode::ValidationError, "Request validation failed")
        }
    }

    /// 422 for one field.
    pub fn field(error: FieldError) -> Self {
        Self::validation(vec![error])
    }

    /// 400 `INVALID_REQUEST_BODY`.
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequestBody, message)
    }

    /// 400 `INVALID_CURSOR`.
    pub fn invalid_cursor() -> Self {
        Self::new(
            ErrorCode::InvalidCursor,
            "The cursor is not valid for this request",
        )
    }

    /// 500: the cause is logged here and never returned to the caller.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalServerError,
            "An unexpected error occurred",
        )
    }

    /// Adds machine-readable `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<plunk_store::table::StoreError> for ApiError {
    fn from(e: plunk_store::table::StoreError) -> Self {
        match e {
            plunk_store::table::StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Self::new(
                    ErrorCode::ServiceUnavailable,
                    "The data store is temporarily unavailable",
                )
                .with_retry_after(1)
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    /// The body is written by `pipeline::finish`, which adds the request id; until then the error
    /// travels in the response extensions.
    fn into_response(self) -> Response {
        let mut response = self.code.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_spec_status_and_a_suggestion() {
        // The spec's 47, the three of HTTP requests the server cannot parse, and
        // WEBHOOK_DISABLED (docs/decisions.md).
        assert_eq!(ErrorCode::ALL.len(), 51);
        for code in ErrorCode::ALL {
            assert!(!code.suggestion().is_empty());
        }
        assert_eq!(ErrorCode::InvalidKeyType.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::IdempotencyKeyInProgress).unwrap(),
            "IDEMPOTENCY_KEY_IN_PROGRESS"
        );
    }
}
