//! The request pipeline around every router: request ids, error rendering into
//! the envelope, 404/405, CORS for `/v1/*`, and the body-size check.

use crate::envelope::json_response;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use plunk_domain::Timestamp;
use serde_json::json;
use std::panic::AssertUnwindSafe;
use tracing::Instrument;

/// The request id of the current request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The API gateway's request id, inserted by the Lambda entry point when there is one.
#[derive(Debug, Clone)]
pub struct GatewayRequestId(pub String);

/// The client address as the API gateway saw it (`requestContext.http.sourceIp`), inserted by
/// the Lambda entry point when there is one.
#[derive(Debug, Clone)]
pub struct GatewaySourceIp(pub String);

/// The address a request came from: the gateway's `sourceIp` when present, else the socket peer
/// (`plunk serve` records it with `ConnectInfo`). Headers such as `X-Forwarded-For` are never
/// read: a client could set them to anything. `None` when neither is known (in-process tests).
pub fn source_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    if let Some(ip) = extensions
        .get::<GatewaySourceIp>()
        .and_then(|g| g.0.trim().parse().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The counted form of a source address: a hash of it (of its /64 for IPv6, the block one
/// subscriber usually holds), so limits per source never store an address. Requests whose source
/// is unknown share one key.
pub fn source_key(ip: Option<std::net::IpAddr>) -> String {
    use sha2::{Digest, Sha256};
    use std::net::IpAddr;
    let canonical = match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    };
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Outermost layer: assigns the request id, renders `ApiError`s (and axum's bare 405s) into the
/// error envelope, and stamps `X-Request-Id` on every response.
pub async fn finish(mut req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<GatewayRequestId>()
        .map(|g| g.0.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %loggable_path(req.uri().path()));
    let started = std::time::Instant::now();
    // A panic anywhere below (a bug, or a third-party crate failing on odd input) is this
    // request's 500, in the envelope; the process and every other request go on.
    let mut response = AssertUnwindSafe(next.run(req).instrument(span.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| span.in_scope(|| panicked(panic.as_ref()).into_response()));
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        response = render(response, &error, &id);
    } else if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let error = ApiError::new(
            ErrorCode::MethodNotAllowed,
            "Method not allowed on this path",
        );
        response = render(response, &error, &id);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    // One line per request; headers (and so keys) are never logged.
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    response
}

/// The 500 of a request whose handling panicked; the panic's message is logged, not returned.
pub fn panicked(payload: &(dyn std::any::Any + Send)) -> ApiError {
    ApiError::internal(&format_args!(
        "the request panicked: {}",
        plunk_domain::panic::message(payload)
    ))
}

/// The path as logged: a hosted-page token (a link that can change a contact's subscription) is
/// replaced by `…`, like keys are kept out of logs.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for page in ["/unsubscribe/", "/subscribe/", "/manage/"] {
        if path.starts_with(page) {
            return format!("{page}…").into();
        }
    }
    path.into()
}

/// Replaces the body of `response` with the error envelope, keeping its headers.
fn render(response: Response, error: &ApiError, request_id: &str) -> Response {
    let status = error.code.status();
    let (parts, _) = response.into_parts();
    let mut rendered = json_response(status, envelope_bytes(error, request_id));
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Some(seconds) = error.retry_after {
        rendered
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    rendered
}

/// The JSON error envelope of `error`, as bytes.
pub fn envelope_bytes(error: &ApiError, request_id: &str) -> Vec<u8> {
    let status = error.code.status();
    let mut body = json!({
        "code": error.code,
        "message": error.message,
        "statusCode": status.as_u16(),
        "requestId": request_id,
        "suggestion": error.code.suggestion(),
    });
    if error.code == ErrorCode::ValidationError {
        body["errors"] = json!(error.errors);
    }
    if let Some(details) = &error.details {
        body["details"] = (**details).clone();
    }
    let envelope = json!({
        "success": false,
        "error": body,
        "timestamp": Timestamp::now(),
    });
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Router fallback: 404 `NOT_FOUND` for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No route matches this path")
}

const CORS_EXPOSE: &str =
    "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Idempotent-Replayed";

/// CORS for `/v1/*` only: preflight answered with 204 before routing, every
/// response opened to any origin. Other paths get no CORS headers.
pub async fn cors(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, Idempotency-Key"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE),
        );
        return response;
    }
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE),
    );
    response
}

/// Route layer: 413 `PAYLOAD_TOO_LARGE` when the declared body is over the limit (checked after
/// routing and before authentication). Bodies of unknown length are limited while being read.
pub async fn body_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.settings.body_limit_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| http_body::Body::size_hint(req.body()).exact());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit).into_response();
    }
    next.run(req).await
}

/// The 413 error for a body over `limit` bytes.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large")
        .with_details(json!({ "limitBytes": limit }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_hashed_and_ipv6_counts_per_64() {
        use std::net::IpAddr;
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert_ne!(source_key(Some(a)), source_key(Some(b)));
        assert!(!source_key(Some(a)).contains("203"));
        assert_eq!(source_key(Some(a)).len(), 24);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(source_key(Some(mapped)), source_key(Some(a)));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(Some(v6a)), source_key(Some(v6b)));
        assert_ne!(source_key(Some(v6a)), source_key(Some(v6c)));
        assert_eq!(source_key(None), source_key(None));
    }

    #[test]
    fn hosted_page_tokens_stay_out_of_the_log() {
        assert_eq!(loggable_path("/unsubscribe/AQE.x"), "/unsubscribe/…");
        assert_eq!(loggable_path("/manage/AQE.x"), "/manage/…");
        assert_eq!(loggable_path("/subscribe/AQE.x"), "/subscribe/…");
        assert_eq!(loggable_path("/contacts/1"), "/contacts/1");
    }
}
