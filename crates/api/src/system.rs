//! System endpoints: `/health` and `/openapi.json`, no auth, not rate limited.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plunk_domain::Timestamp;
use plunk_http_kit::Envelope;
use serde::Serialize;
use utoipa::ToSchema;

/// The routes of this group.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
}

/// `GET /health` data.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub version: &'static str,
    pub time: String,
}

/// Success envelope of `/health`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HealthEnvelope {
    success: bool,
    data: Health,
}

/// Liveness; does not probe dependencies.
#[utoipa::path(get, path = "/health", tag = "System",
    responses((status = 200, description = "The service is up", body = HealthEnvelope)))]
pub async fn health() -> Envelope<Health> {
    Envelope::ok(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        time: Timestamp::now().to_string(),
    })
}

/// The OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "System",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    Json(crate::openapi::document_json()).into_response()
}
