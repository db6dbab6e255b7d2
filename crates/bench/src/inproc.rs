//! The API in process, as the tests drive it: `plunk_api::app` called with `oneshot`, plus the
//! set-up every send benchmark needs (a project whose sending domain is verified).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use plunk_domain::project::{Project, Tracking, MAX_RATE_LIMIT};
use plunk_store::Store;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

/// The whole API as `plunk serve` mounts it.
pub type Api = NormalizePath<Router>;

/// A response: status, body (JSON, or `Null`) and how long the service took, body read included.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub elapsed: Duration,
}

/// Sends one request with `Authorization: <bearer>` through `app`.
pub async fn call(
    app: &Api,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> Reply {
    call_with_headers(app, method, path, bearer, body, &[]).await
}

/// Like [`call`], with more request headers.
pub async fn call_with_headers(
    app: &Api,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", bearer);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request");
    let started = Instant::now();
    let res = app.clone().oneshot(req).await.expect("infallible service");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let elapsed = started.elapsed();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        elapsed,
    }
}

/// A project allowed the most requests a minute, with `domain` registered and verified (through
/// the API, with the local identity stand-in). Returns the project and its `Bearer` header value.
pub async fn project_with_domain(
    store: &Store,
    app: &Api,
    name: &str,
    domain: &str,
) -> (Project, String) {
    let (project, secret, _) = store
        .projects()
        .create(name, MAX_RATE_LIMIT, Tracking::Disabled, "en")
        .await
        .expect("create project");
    let bearer = format!("Bearer {}", secret.expose());
    let created = call(
        app,
        Method::POST,
        "/domains",
        &bearer,
        Some(&json!({ "domain": domain })),
    )
    .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "create domain: {}",
        created.body
    );
    let id = created.body["data"]["id"]
        .as_str()
        .expect("domain id")
        .to_owned();
    let verified = call(
        app,
        Method::POST,
        &format!("/domains/{id}/verify"),
        &bearer,
        None,
    )
    .await;
    assert_eq!(
        verified.body["data"]["verified"],
        json!(true),
        "verify domain: {}",
        verified.body
    );
    (project, bearer)
}

/// A `/v1/send` body: inline subject and HTML to `to`, from `from`.
pub fn send_body(to: &[String], from: &str) -> Value {
    json!({
        "to": to,
        "from": from,
        "subject": "Your receipt {{ name ?? \"\" }}",
        "body": "<p>Hello {{ name ?? \"there\" }},</p><p>Thanks for your order. Your receipt is attached below.</p>",
    })
}

/// The email ids of a successful `/v1/send` reply, in recipient order.
pub fn email_ids(reply: &Reply) -> Vec<uuid::Uuid> {
    reply.body["data"]["emails"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["email"].as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}
