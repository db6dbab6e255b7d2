//! Public keys cannot starve secret keys, and bad keys are limited: public-key requests have their own budget and a per-source limit; failed
//! authentication is limited per source and unknown keys are remembered briefly; a public key
//! never changes an existing contact's subscription.

mod common;

use async_trait::async_trait;
use axum::body::Body;
use common::TestApp;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use plunk_domain::project::Tracking;
use plunk_http_kit::pipeline::GatewaySourceIp;
use plunk_http_kit::{AppState, Settings};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::table::{Condition, Item, Key, Page, Query, StoreError, Table, WriteOp};
use plunk_store::Store;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A response's status, `error.code` and `RateLimit-Remaining`.
struct Answer {
    status: StatusCode,
    code: String,
    remaining: Option<u32>,
    body: Value,
}

/// `POST path` with `key` (when given) from `source` (when given).
async fn post(
    state: &AppState,
    path: &str,
    key: Option<&str>,
    source: Option<&str>,
    body: Value,
) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let mut req = req.body(Body::from(body.to_string())).unwrap();
    if let Some(ip) = source {
        req.extensions_mut().insert(GatewaySourceIp(ip.to_owned()));
    }
    let res = plunk_api::app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let remaining = res
        .headers()
        .get("ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        code: body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        remaining,
        body,
    }
}

fn track(email: &str) -> Value {
    json!({"event": "viewed", "email": email})
}

#[tokio::test]
async fn public_key_requests_have_their_own_budget() {
    let store = Store::sqlite(SqliteTable::in_memory().unwrap());
    let (_, secret, public) = store
        .projects()
        .create("Small", 10, Tracking::Enabled, "en")
        .await
        .unwrap();
    let state = AppState::new(store, common::test_settings());
    let (secret, public) = (secret.expose().to_owned(), public.expose().to_owned());
    for i in 0..10 {
        let a = post(
            &state,
            "/v1/track",
            Some(&public),
            None,
            track(&format!("v{i}@example.org")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.remaining, Some(9 - i));
    }
    let over = post(
        &state,
        "/v1/track",
        Some(&public),
        None,
        track("v@example.org"),
    )
    .await;
    assert_eq!(
        (over.status, over.code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED")
    );
    // The secret key's budget is untouched.
    let server = post(
        &state,
        "/v1/track",
        Some(&secret),
        None,
        track("s@example.org"),
    )
    .await;
    assert_eq!(server.status, StatusCode::OK, "{}", server.body);
    assert_eq!(server.remaining, Some(9));
}

#[tokio::test]
async fn one_source_gets_at_most_120_public_requests_a_minute() {
    let app = TestApp::new().await;
    for i in 0..120 {
        let a = post(
            &app.state,
            "/v1/track",
            Some(&app.public),
            Some("203.0.113.7"),
            track(&format!("v{i}@example.org")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "request {i}: {}", a.body);
    }
    let over = post(
        &app.state,
        "/v1/track",
        Some(&app.public),
        Some("203.0.113.7"),
        track("x@example.org"),
    )
    .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.body["error"]["details"]["limit"], json!(120));
    // Another visitor of the same page is still served, and so is the server.
    let other = post(
        &app.state,
        "/v1/track",
        Some(&app.public),
        Some("198.51.100.1"),
        track("y@example.org"),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    let server = post(
        &app.state,
        "/v1/track",
        Some(&app.secret),
        Some("203.0.113.7"),
        track("z@example.org"),
    )
    .await;
    assert_eq!(server.status, StatusCode::OK);
}

#[tokio::test]
async fn a_source_failing_authentication_more_than_60_times_a_minute_gets_429() {
    let app = TestApp::new().await;
    let bad = format!("sk_{}", "A".repeat(43));
    for i in 0..60 {
        let key = if i % 2 == 0 { Some(bad.as_str()) } else { None };
        let a = post(&app.state, "/v1/send", key, Some("203.0.113.9"), json!({})).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "request {i}");
    }
    let limited = post(
        &app.state,
        "/v1/send",
        Some(&bad),
        Some("203.0.113.9"),
        json!({}),
    )
    .await;
    assert_eq!(
        (limited.status, limited.code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED")
    );
    assert_eq!(limited.body["error"]["details"]["limit"], json!(60));
    // Other sources still get their 401, and a valid key from the limited source still works.
    let elsewhere = post(
        &app.state,
        "/v1/send",
        Some(&bad),
        Some("198.51.100.2"),
        json!({}),
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);
    let valid = post(
        &app.state,
        "/v1/track",
        Some(&app.secret),
        Some("203.0.113.9"),
        track("a@example.org"),
    )
    .await;
    assert_eq!(valid.status, StatusCode::OK, "{}", valid.body);
}

/// Counts the reads that reach the table.
struct Counting {
    inner: SqliteTable,
    reads: AtomicUsize,
}

#[async_trait]
impl Table for Counting {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete(key, condition).await
    }
    async fn add(
        &self,
        key: &Key,
        by: i64,
        cap: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.inner.add(key, by, cap, ttl).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.batch_get(keys).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.inner.transact(ops).await
    }
}

#[tokio::test]
async fn an_unknown_key_costs_one_store_read_then_is_remembered() {
    let table = Arc::new(Counting {
        inner: SqliteTable::in_memory().unwrap(),
        reads: AtomicUsize::new(0),
    });
    let store = Store::new(table.clone());
    let settings = Settings {
        key_cache_ttl: Duration::from_secs(60),
        ..Settings::default()
    };
    let state = AppState::new(store, settings);
    let bad = format!("pk_{}", "B".repeat(43));
    let first = post(
        &state,
        "/v1/track",
        Some(&bad),
        None,
        track("a@example.org"),
    )
    .await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let after_first = table.reads.load(Ordering::SeqCst);
    assert!(after_first >= 1);
    for _ in 0..50 {
        let again = post(
            &state,
            "/v1/track",
            Some(&bad),
            None,
            track("a@example.org"),
        )
        .await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        table.reads.load(Ordering::SeqCst),
        after_first,
        "no store read for a key known to be unknown"
    );
}

#[tokio::test]
async fn a_public_key_never_changes_an_existing_contacts_subscription() {
    let app = TestApp::new().await;
    let created = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": "gone@example.org", "subscribed": false})),
        )
        .await;
    let id = created.data()["id"].as_str().unwrap().to_owned();
    let phish = json!({"event": "clicked", "email": "gone@example.org", "subscribed": true,
        "data": {"name": "<a href='https://phish.example'>click</a>"}});
    let tracked = post(&app.state, "/v1/track", Some(&app.public), None, phish).await;
    assert_eq!(tracked.status, StatusCode::OK, "{}", tracked.body);
    let contact = app
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(
        contact.data()["subscribed"],
        json!(false),
        "still unsubscribed"
    );
    // Data still merges (and is escaped when rendered into an HTML body).
    assert_eq!(
        contact.data()["data"]["name"],
        json!("<a href='https://phish.example'>click</a>")
    );
    // Unsubscribing through the public key does not work either.
    app.call(
        Method::PATCH,
        &format!("/contacts/{id}"),
        Some(json!({"subscribed": true})),
    )
    .await;
    let off = json!({"event": "x", "email": "gone@example.org", "subscribed": false});
    post(
        &app.state,
        "/v1/track",
        Some(&app.public),
        None,
        off.clone(),
    )
    .await;
    let contact = app
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(contact.data()["subscribed"], json!(true));
    // A new contact still takes `subscribed` from a public key; the secret key changes it.
    let new = json!({"event": "x", "email": "new@example.org", "subscribed": false});
    let fresh = post(&app.state, "/v1/track", Some(&app.public), None, new).await;
    let fresh_id = fresh.body["data"]["contact"].as_str().unwrap();
    let contact = app
        .call(Method::GET, &format!("/contacts/{fresh_id}"), None)
        .await;
    assert_eq!(contact.data()["subscribed"], json!(false));
    post(&app.state, "/v1/track", Some(&app.secret), None, off).await;
    let contact = app
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(contact.data()["subscribed"], json!(false));
}
