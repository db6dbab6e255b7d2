//! Idempotency end to end: a tiny router with the real auth layer and pipeline
//! whose handler wraps a controllable `run` in `idempotency::execute_with`, on the embedded store
//! and, when `PLUNK_TEST_DYNAMODB_ENDPOINT` is set, on DynamoDB Local.

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use plunk_domain::project::Tracking;
use plunk_http_kit::auth::guarded;
use plunk_http_kit::idempotency::{execute_with, IdempotencyKey, IdempotencyOptions};
use plunk_http_kit::{
    pipeline, Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, Settings,
};
use plunk_store::backend::dynamo::DynamoTable;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::table::{Condition, Item, Key, Page, Query, StoreError, Table, WriteOp};
use plunk_store::Store;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tower::ServiceExt;
use uuid::Uuid;

/// What the next run of the handler does.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// 201 with the run number and its first three reserved ids.
    Created,
    /// 422 `VALIDATION_ERROR`.
    ClientError,
    /// 500 `INTERNAL_SERVER_ERROR`.
    ServerError,
    /// Signals `started`, waits for `proceed`, then answers like `Created`.
    Gate,
    /// Signals `started` and never finishes (a function that dies mid-request).
    Hang,
    /// Panics (a bug, or a third-party crate failing on odd input).
    Panic,
}

/// Counts and steers the runs of the handler.
struct Probe {
    runs: AtomicUsize,
    ids: Mutex<Vec<Vec<Uuid>>>,
    plan: Mutex<VecDeque<Outcome>>,
    started: Notify,
    proceed: Notify,
    lock: Mutex<Duration>,
}

impl Probe {
    fn new() -> Self {
        Self {
            runs: AtomicUsize::new(0),
            ids: Mutex::new(Vec::new()),
            plan: Mutex::new(VecDeque::new()),
            started: Notify::new(),
            proceed: Notify::new(),
            lock: Mutex::new(plunk_http_kit::idempotency::LOCK),
        }
    }

    fn plan(&self, outcomes: &[Outcome]) {
        self.plan.lock().unwrap().extend(outcomes);
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn ids_of_run(&self, run: usize) -> Vec<Uuid> {
        self.ids.lock().unwrap()[run - 1].clone()
    }
}

async fn handler(
    State(state): State<AppState>,
    Extension(probe): Extension<Arc<Probe>>,
    auth: AuthContext,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Response {
    let key = match IdempotencyKey::from_headers(&headers) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let options = IdempotencyOptions {
        lock: *probe.lock.lock().unwrap(),
    };
    execute_with(
        &state,
        options,
        (&auth).into(),
        key,
        &method,
        uri.path(),
        &body,
        move |ids| async move {
            let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
            let first = vec![ids.id(0), ids.id(1), ids.id(2)];
            probe.ids.lock().unwrap().push(first.clone());
            let outcome = probe
                .plan
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Outcome::Created);
            let created = Envelope::created(json!({
                "run": run,
                "ids": first,
                "attempt": ids.attempt(),
            }));
            match outcome {
                Outcome::Created => created.into_response(),
                Outcome::ClientError => {
                    ApiError::new(ErrorCode::ValidationError, "Request validation failed")
                        .into_response()
                }
                Outcome::ServerError => ApiError::internal(&"planned failure").into_response(),
                Outcome::Gate => {
                    probe.started.notify_one();
                    probe.proceed.notified().await;
                    created.into_response()
                }
                Outcome::Hang => {
                    probe.started.notify_one();
                    std::future::pending::<Response>().await
                }
                Outcome::Panic => panic!("the handler panicked on purpose"),
            }
        },
    )
    .await
}

/// The test router, layered like `plunk_api::service`.
fn router(state: &AppState, probe: Arc<Probe>) -> Router {
    let routes = Router::new()
        .route("/v1/send", guarded(state, Access::Secret, post(handler)))
        .route(
            "/v1/track",
            guarded(state, Access::PublicOrSecret, post(handler)),
        )
        .layer(Extension(probe))
        .with_state(state.clone());
    Router::new()
        .merge(routes)
        .fallback(pipeline::not_found)
        .layer(from_fn(pipeline::cors))
        .layer(from_fn(pipeline::finish))
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Dynamo,
}

async fn table(backend: Backend) -> Option<Arc<dyn Table>> {
    match backend {
        Backend::Sqlite => Some(Arc::new(SqliteTable::in_memory().unwrap())),
        Backend::Dynamo => {
            let endpoint = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT").ok()?;
            for (k, v) in [
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ] {
                if std::env::var(k).is_err() {
                    std::env::set_var(k, v);
                }
            }
            let name = format!("idempotency-test-{}", Uuid::now_v7());
            let table = DynamoTable::from_env(&name, Some(&endpoint)).await;
            table.create_table_if_missing().await.unwrap();
            Some(Arc::new(table))
        }
    }
}

/// A store, one project with its secret key, the router and its probe.
struct Harness {
    store: Store,
    secret: String,
    public: String,
    probe: Arc<Probe>,
    app: Router,
}

/// A response with its raw body.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    fn run(&self) -> u64 {
        self.body["data"]["run"].as_u64().unwrap()
    }
    fn ids(&self) -> Vec<Uuid> {
        serde_json::from_value(self.body["data"]["ids"].clone()).unwrap()
    }
}

impl Harness {
    async fn on(backend: Backend) -> Option<Self> {
        let Some(table) = table(backend).await else {
            eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
            return None;
        };
        Some(Self::over(table).await)
    }

    async fn over(table: Arc<dyn Table>) -> Self {
        let store = Store::new(table);
        let (_, secret, public) = store
            .projects()
            .create("Test", 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        let settings = Settings {
            key_cache_ttl: Duration::ZERO,
            ..Settings::default()
        };
        let state = AppState::new(store.clone(), settings);
        let probe = Arc::new(Probe::new());
        let app = router(&state, probe.clone());
        Self {
            store,
            secret: secret.expose().to_owned(),
            public: public.expose().to_owned(),
            probe,
            app,
        }
    }

    /// POST `body` to `path` with the project's key and `Idempotency-Key: key` when given.
    async fn post(&self, path: &str, key: Option<&str>, body: &str) -> Reply {
        let key = key.map(|k| HeaderValue::from_str(k).unwrap());
        self.post_as(&self.secret, path, key, body).await
    }

    async fn post_as(
        &self,
        secret: &str,
        path: &str,
        key: Option<HeaderValue>,
        body: &str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {secret}"))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let req = req.body(Body::from(body.to_owned())).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            bytes,
            body,
        }
    }
}

/// Runs each test on both backends, as `<name>::sqlite` and `<name>::dynamo`.
macro_rules! on_both_backends {
    ($( async fn $name:ident($h:ident: Harness) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($h: Harness) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run(Harness::on(Backend::Sqlite).await.unwrap()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dynamo() {
                    if let Some(h) = Harness::on(Backend::Dynamo).await {
                        run(h).await
                    }
                }
            }
        )*
    };
}

const SEND: &str = r#"{"to":"a@example.com","subject":"Hi","data":{"b":1,"a":[1,2]}}"#;
/// `SEND` with other member order and whitespace: the same fingerprint.
const SEND_REORDERED: &str =
    "{ \"data\": { \"a\": [1, 2], \"b\": 1 },\n  \"subject\": \"Hi\", \"to\": \"a@example.com\" }";
const OTHER: &str = r#"{"to":"b@example.com","subject":"Hi"}"#;

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(reply.code(), code, "{}", reply.body);
    assert_eq!(reply.body["error"]["statusCode"], json!(status));
    assert_eq!(
        reply.body["error"]["requestId"].as_str(),
        reply.header("x-request-id")
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(reply.header("idempotent-replayed").is_none());
}

fn assert_fresh(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply.header("idempotent-replayed").is_none());
}

/// Sends `n` identical requests with `key` at once while the run waits at its gate: all but one
/// must answer 409 `IDEMPOTENCY_KEY_IN_PROGRESS` with `Retry-After: 1` and exactly one runs.
/// Returns the runner's reply.
async fn race(h: &Arc<Harness>, key: &'static str, n: usize) -> Reply {
    let runs_before = h.probe.runs();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let h = h.clone();
        tasks.spawn(async move { h.post("/v1/send", Some(key), SEND).await });
    }
    for _ in 1..n {
        let reply = tokio::time::timeout(Duration::from_secs(20), tasks.join_next())
            .await
            .expect("the others answer while one runs")
            .unwrap()
            .unwrap();
        assert_error(&reply, 409, "IDEMPOTENCY_KEY_IN_PROGRESS");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    // The winner holds the key before the others are refused, but on a loaded machine it may
    // reach the handler (where the probe counts) only a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.probe.runs() == runs_before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.probe.runs(), runs_before + 1);
    h.probe.proceed.notify_one();
    let winner = tasks.join_next().await.unwrap().unwrap();
    assert_fresh(&winner);
    assert_eq!(h.probe.runs(), runs_before + 1);
    winner
}

on_both_backends! {
    async fn a_replay_returns_the_stored_status_and_body_and_runs_nothing_twice(h: Harness) {
        let first = h.post("/v1/send", Some("order-1"), SEND).await;
        assert_fresh(&first);
        assert_eq!(first.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(h.probe.runs(), 1);

        for _ in 0..2 {
            let replay = h.post("/v1/send", Some("order-1"), SEND_REORDERED).await;
            assert_eq!(replay.status, StatusCode::CREATED);
            assert_eq!(replay.bytes, first.bytes, "the body is replayed byte for byte");
            assert_eq!(replay.header("idempotent-replayed"), Some("true"));
            assert_eq!(replay.header("content-type"), Some("application/json; charset=utf-8"));
            // Its own request id, rate-limit headers and CORS headers from the outer layers.
            assert_ne!(replay.header("x-request-id"), first.header("x-request-id"));
            assert!(replay.header("x-request-id").is_some());
            assert_eq!(replay.header("ratelimit-limit"), Some("1000"));
            let remaining = |r: &Reply| r.header("ratelimit-remaining").unwrap().parse::<u32>().unwrap();
            assert!(remaining(&replay) < remaining(&first));
            assert_eq!(replay.header("access-control-allow-origin"), Some("*"));
        }
        assert_eq!(h.probe.runs(), 1);
    }

    async fn a_different_body_or_endpoint_with_the_same_key_is_409_reused_with_details(h: Harness) {
        let first = h.post("/v1/send", Some("order-2"), SEND).await;
        assert_fresh(&first);

        let other = h.post("/v1/send", Some("order-2"), OTHER).await;
        assert_error(&other, 409, "IDEMPOTENCY_KEY_REUSED");
        let details = &other.body["error"]["details"];
        assert_eq!(details["key"], json!("order-2"));
        assert_eq!(details["originalRequest"], json!("POST /v1/send"));
        let at = details["originalRequestAt"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}");

        let elsewhere = h.post("/v1/track", Some("order-2"), SEND).await;
        assert_error(&elsewhere, 409, "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(elsewhere.body["error"]["details"]["originalRequest"], json!("POST /v1/send"));
        assert_eq!(elsewhere.body["error"]["details"]["originalRequestAt"], json!(at));
        assert_eq!(h.probe.runs(), 1);

        // The original request still replays.
        let replay = h.post("/v1/send", Some("order-2"), SEND).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, first.bytes);
    }

    async fn concurrent_requests_with_one_key_run_once_and_the_others_get_409_in_progress(h: Harness) {
        h.probe.plan(&[Outcome::Gate]);
        let h = Arc::new(h);
        let winner = race(&h, "race", 6).await;
        assert_eq!(winner.run(), 1);

        let replay = h.post("/v1/send", Some("race"), SEND).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, winner.bytes);
    }

    async fn concurrent_retries_after_a_server_error_run_once(h: Harness) {
        h.probe.plan(&[Outcome::ServerError, Outcome::Gate]);
        let failed = h.post("/v1/send", Some("retry-race"), SEND).await;
        assert_error(&failed, 500, "INTERNAL_SERVER_ERROR");
        let h = Arc::new(h);
        let winner = race(&h, "retry-race", 6).await;
        assert_eq!(winner.run(), 2);
        assert_eq!(winner.ids(), h.probe.ids_of_run(1));
    }

    async fn a_client_error_releases_the_key_for_a_corrected_request(h: Harness) {
        h.probe.plan(&[Outcome::ClientError]);
        let refused = h.post("/v1/send", Some("fix-me"), SEND).await;
        assert_error(&refused, 422, "VALIDATION_ERROR");

        let corrected = h.post("/v1/send", Some("fix-me"), OTHER).await;
        assert_fresh(&corrected);
        assert_eq!(corrected.run(), 2);

        let replay = h.post("/v1/send", Some("fix-me"), OTHER).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, corrected.bytes);
        assert_eq!(h.probe.runs(), 2);
    }

    async fn a_server_error_keeps_the_key_and_the_retry_runs_with_the_same_ids(h: Harness) {
        h.probe.plan(&[Outcome::ServerError, Outcome::ServerError]);
        let failed = h.post("/v1/send", Some("flaky"), SEND).await;
        assert_error(&failed, 500, "INTERNAL_SERVER_ERROR");

        // Still claimed: another request may not take the key.
        let other = h.post("/v1/send", Some("flaky"), OTHER).await;
        assert_error(&other, 409, "IDEMPOTENCY_KEY_REUSED");

        let failed_again = h.post("/v1/send", Some("flaky"), SEND_REORDERED).await;
        assert_error(&failed_again, 500, "INTERNAL_SERVER_ERROR");
        let retried = h.post("/v1/send", Some("flaky"), SEND).await;
        assert_fresh(&retried);
        assert_eq!(retried.run(), 3);
        assert_eq!(retried.body["data"]["attempt"], json!(3));
        let ids = h.probe.ids_of_run(1);
        assert_eq!(h.probe.ids_of_run(2), ids);
        assert_eq!(retried.ids(), ids);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));

        let replay = h.post("/v1/send", Some("flaky"), SEND).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, retried.bytes);
        assert_eq!(h.probe.runs(), 3);
    }

    async fn a_panic_is_a_500_in_the_envelope_and_leaves_the_key_retryable(h: Harness) {
        h.probe.plan(&[Outcome::Panic]);
        let panicked = h.post("/v1/send", Some("panicky"), SEND).await;
        assert_error(&panicked, 500, "INTERNAL_SERVER_ERROR");
        assert!(panicked.header("x-request-id").is_some());
        assert_eq!(
            panicked.body["error"]["requestId"].as_str(),
            panicked.header("x-request-id")
        );
        // Not locked for a minute: the retry runs at once, with the same ids.
        let retried = h.post("/v1/send", Some("panicky"), SEND).await;
        assert_fresh(&retried);
        assert_eq!(retried.ids(), h.probe.ids_of_run(1));
        // Without a key, a panic is a 500 too, and the next request is served.
        h.probe.plan(&[Outcome::Panic]);
        assert_error(&h.post("/v1/send", None, SEND).await, 500, "INTERNAL_SERVER_ERROR");
        assert_fresh(&h.post("/v1/send", None, SEND).await);
    }

    async fn an_expired_lock_is_taken_over_with_the_same_ids(h: Harness) {
        *h.probe.lock.lock().unwrap() = Duration::from_millis(1500);
        h.probe.plan(&[Outcome::Hang]);
        let h = Arc::new(h);
        let dying = {
            let h = h.clone();
            tokio::spawn(async move { h.post("/v1/send", Some("dies"), SEND).await })
        };
        h.probe.started.notified().await;
        let waiting = h.post("/v1/send", Some("dies"), SEND).await;
        assert_error(&waiting, 409, "IDEMPOTENCY_KEY_IN_PROGRESS");
        assert_eq!(waiting.header("retry-after"), Some("1"));
        // The first request dies (its function is stopped) while holding the key.
        dying.abort();
        assert!(dying.await.unwrap_err().is_cancelled());

        tokio::time::sleep(Duration::from_millis(1600)).await;
        let other = h.post("/v1/send", Some("dies"), OTHER).await;
        assert_error(&other, 409, "IDEMPOTENCY_KEY_REUSED");
        let taken_over = h.post("/v1/send", Some("dies"), SEND).await;
        assert_fresh(&taken_over);
        assert_eq!(taken_over.run(), 2);
        assert_eq!(taken_over.ids(), h.probe.ids_of_run(1));

        let replay = h.post("/v1/send", Some("dies"), SEND).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, taken_over.bytes);
        assert_eq!(h.probe.runs(), 2);
    }

    async fn a_slow_attempt_that_lost_its_lock_does_not_overwrite_the_takeover(h: Harness) {
        *h.probe.lock.lock().unwrap() = Duration::ZERO;
        h.probe.plan(&[Outcome::Gate]);
        let h = Arc::new(h);
        let slow = {
            let h = h.clone();
            tokio::spawn(async move { h.post("/v1/send", Some("slow"), SEND).await })
        };
        h.probe.started.notified().await;
        let taken_over = h.post("/v1/send", Some("slow"), SEND).await;
        assert_fresh(&taken_over);
        h.probe.proceed.notify_one();
        let slow = slow.await.unwrap();
        assert_fresh(&slow);
        assert_eq!((slow.run(), taken_over.run()), (1, 2));
        assert_eq!(slow.ids(), taken_over.ids());

        let replay = h.post("/v1/send", Some("slow"), SEND).await;
        assert_eq!(replay.bytes, taken_over.bytes, "the current claimant's response is kept");
    }

    async fn invalid_keys_are_400_invalid_idempotency_key_and_nothing_runs(h: Harness) {
        let long = "k".repeat(257);
        let bad: Vec<HeaderValue> = vec![
            HeaderValue::from_static(""),
            HeaderValue::from_str(&long).unwrap(),
            HeaderValue::from_static("tab\there"),
            HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        ];
        for key in bad {
            let reply = h.post_as(&h.secret, "/v1/send", Some(key.clone()), SEND).await;
            assert_error(&reply, 400, "INVALID_IDEMPOTENCY_KEY");
            assert_eq!(reply.header("ratelimit-limit"), Some("1000"));
        }
        assert_eq!(h.probe.runs(), 0);
        let longest = "k".repeat(256);
        assert_fresh(&h.post("/v1/send", Some(&longest), SEND).await);
        assert_fresh(&h.post("/v1/send", Some(" ~printable ASCII with spaces~ "), SEND).await);
    }

    async fn without_a_key_every_request_runs_with_fresh_ids(h: Harness) {
        let first = h.post("/v1/send", None, SEND).await;
        let second = h.post("/v1/send", None, SEND).await;
        assert_fresh(&first);
        assert_fresh(&second);
        assert_eq!((first.run(), second.run()), (1, 2));
        assert_ne!(first.ids(), second.ids());
        assert_eq!(first.body["data"]["attempt"], json!(1));
    }

    async fn keys_used_with_the_public_key_never_collide_with_the_secret_keys(h: Harness) {
        let key = Some(HeaderValue::from_static("order-1234"));
        let visitor = h.post_as(&h.public, "/v1/track", key.clone(), SEND).await;
        assert_fresh(&visitor);
        // The server's request with the same key runs, neither 409 nor a replay of the visitor's.
        let server = h.post_as(&h.secret, "/v1/send", key.clone(), OTHER).await;
        assert_fresh(&server);
        assert_ne!(server.ids(), visitor.ids());
        // Each key type replays its own.
        let again = h.post_as(&h.public, "/v1/track", key.clone(), SEND).await;
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.bytes, visitor.bytes);
        let again = h.post_as(&h.secret, "/v1/send", key, OTHER).await;
        assert_eq!(again.bytes, server.bytes);
        assert_eq!(h.probe.runs(), 2);
    }

    async fn keys_are_scoped_to_the_project(h: Harness) {
        let (_, other_secret, _) = h
            .store
            .projects()
            .create("Other", 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        let key = Some(HeaderValue::from_static("shared"));
        let mine = h.post_as(&h.secret, "/v1/send", key.clone(), SEND).await;
        let theirs = h.post_as(other_secret.expose(), "/v1/send", key.clone(), OTHER).await;
        assert_fresh(&mine);
        assert_fresh(&theirs);
        assert_ne!(mine.ids(), theirs.ids());
        assert_eq!(h.probe.runs(), 2);
    }
}

/// A table that fails the idempotency records it is told to, and passes everything else on.
struct FlakyTable {
    inner: SqliteTable,
    /// Fail every read and write of an idempotency record.
    fail_all: bool,
    /// Fail only writes that store a completed response.
    fail_completed: bool,
    /// Answer reads of idempotency records late, so racing requests all see the same state.
    slow_reads: bool,
}

impl FlakyTable {
    fn affected(&self, key: &Key) -> bool {
        key.pk.contains("#IDEMPOTENCY#")
    }
}

#[async_trait]
impl Table for FlakyTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        if self.fail_all && self.affected(key) {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        let item = self.inner.get(key).await;
        if self.slow_reads && self.affected(key) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        item
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        if self.affected(&item.key)
            && (self.fail_all || (self.fail_completed && item.body["state"]["kind"] == "COMPLETED"))
        {
            return Err(StoreError::Other("item too large".into()));
        }
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete(key, condition).await
    }
    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.inner.add(key, delta, max, ttl).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.inner.transact(ops).await
    }
}

async fn flaky(fail_all: bool, fail_completed: bool, slow_reads: bool) -> Harness {
    Harness::over(Arc::new(FlakyTable {
        inner: SqliteTable::in_memory().unwrap(),
        fail_all,
        fail_completed,
        slow_reads,
    }))
    .await
}

#[tokio::test]
async fn a_store_failure_before_running_answers_503_and_runs_nothing() {
    let h = flaky(true, false, false).await;
    let reply = h.post("/v1/send", Some("order-9"), SEND).await;
    assert_error(&reply, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(h.probe.runs(), 0);
    // Without a key the store is not involved.
    assert_fresh(&h.post("/v1/send", None, SEND).await);
}

#[tokio::test]
async fn a_response_the_store_refuses_is_still_returned_and_leaves_the_key_retryable() {
    let h = flaky(false, true, false).await;
    let first = h.post("/v1/send", Some("big"), SEND).await;
    assert_fresh(&first);
    let again = h.post("/v1/send", Some("big"), SEND).await;
    assert_fresh(&again);
    assert_eq!(again.run(), 2);
    assert_eq!(again.ids(), first.ids());
    assert_error(
        &h.post("/v1/send", Some("big"), OTHER).await,
        409,
        "IDEMPOTENCY_KEY_REUSED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_that_all_read_the_same_state_still_run_once() {
    let h = Arc::new(flaky(false, false, true).await);
    // Every request reads "no record" before any of them writes its claim.
    h.probe
        .plan(&[Outcome::Gate, Outcome::ServerError, Outcome::Gate]);
    assert_eq!(race(&h, "first-use", 4).await.run(), 1);
    // Every retry reads the same retryable record before any of them takes it over.
    let failed = h.post("/v1/send", Some("retry"), SEND).await;
    assert_error(&failed, 500, "INTERNAL_SERVER_ERROR");
    let winner = race(&h, "retry", 4).await;
    assert_eq!(winner.ids(), h.probe.ids_of_run(2));
}
