//! The resource id of a request path.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use plunk_http_kit::ApiError;
use uuid::Uuid;

/// The id in the path, or `missing()` (the resource's 404) when it is not a well-formed UUID:
/// a malformed id is reported like an unknown one.
pub(crate) fn path_id(
    path: Result<Path<String>, PathRejection>,
    missing: fn() -> ApiError,
) -> Result<Uuid, ApiError> {
    path.ok()
        .and_then(|Path(raw)| plunk_domain::id::parse_id(&raw))
        .ok_or_else(missing)
}
