//! Test harness: the whole API over a real store (embedded SQLite, or DynamoDB Local when
//! `PLUNK_TEST_DYNAMODB_ENDPOINT` is set), driven in-process with `oneshot`.

#![allow(dead_code)]

pub mod webhook_receiver;

use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use plunk_domain::project::{Project, Tracking};
use plunk_http_kit::{AppState, Settings};
use plunk_store::backend::dynamo::DynamoTable;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Dynamo,
}

/// A running API and one project with its keys.
pub struct TestApp {
    pub state: AppState,
    pub store: Store,
    pub project: Project,
    pub secret: String,
    pub public: String,
    /// Event ids already given to the dispatcher (DynamoDB runs, which have no local feed).
    pub dispatched: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The workflow queue the dispatcher and the engine share.
    pub workflow_queue: Arc<dyn plunk_messaging::queue::Queue>,
    /// The same queue, to read messages delayed for later.
    pub workflow_messages: Arc<plunk_messaging::memory::MemoryQueue>,
}

/// A response, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// `error.code` of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `data` member.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// A fresh store of the given backend; `None` when DynamoDB Local is not configured.
pub async fn store(backend: Backend) -> Option<Store> {
    match backend {
        Backend::Sqlite => Some(Store::sqlite(SqliteTable::in_memory().unwrap())),
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
            let name = format!("api-test-{}", uuid::Uuid::now_v7());
            let table = DynamoTable::from_env(&name, Some(&endpoint)).await;
            table.create_table_if_missing().await.unwrap();
            Some(Store::new(Arc::new(table)))
        }
    }
}

impl TestApp {
    /// An app on the embedded store with default settings (no key cache, so revocations show).
    pub async fn new() -> Self {
        Self::on(Backend::Sqlite).await.unwrap()
    }

    /// An app on `backend`; `None` (and a printed note) when that backend is not available.
    pub async fn on(backend: Backend) -> Option<Self> {
        Self::with_settings(backend, test_settings()).await
    }

    /// An app with custom settings.
    pub async fn with_settings(backend: Backend, settings: Settings) -> Option<Self> {
        let Some(store) = store(backend).await else {
            eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
            return None;
        };
        let (project, secret, public) = store
            .projects()
            .create("Test", 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        let workflow_messages = Arc::new(plunk_messaging::memory::MemoryQueue::default());
        let workflow_queue: Arc<dyn plunk_messaging::queue::Queue> = workflow_messages.clone();
        Some(Self {
            state: AppState::new(store.clone(), settings)
                .with_workflow_queue(workflow_queue.clone()),
            store,
            project,
            secret: secret.expose().to_owned(),
            public: public.expose().to_owned(),
            dispatched: Default::default(),
            workflow_queue,
            workflow_messages,
        })
    }

    /// A second project in the same store, with its secret key.
    pub async fn other_project(&self) -> (Project, String) {
        let (p, s, _) = self
            .store
            .projects()
            .create("Other", 1000, Tracking::Enabled, "en")
            .await
            .unwrap();
        (p, s.expose().to_owned())
    }

    /// Sends a request with the project's secret key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let key = self.secret.clone();
        self.raw(
            method,
            path,
            Some(&key),
            body.map(|b| b.to_string()),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Sends a request with full control over key, body text and headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        self.send(req).await
    }

    /// `GET path` with `key`, as the gateway would pass it from the client address `source`.
    pub async fn get_from(&self, source: &str, path: &str, key: &str) -> TestResponse {
        let mut req = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(plunk_http_kit::pipeline::GatewaySourceIp(source.to_owned()));
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> TestResponse {
        let res = plunk_api::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
        }
    }
}

impl TestApp {
    /// The store held to the table access of the function `name`, as that function runs on AWS.
    pub fn as_function(&self, name: &str) -> Store {
        let profile = plunk_store::access::AccessProfile::of(name).expect("a known function");
        self.store.with_access(profile)
    }

    /// Runs the event dispatcher over every fed write since the last call, as the change feed
    /// would: the embedded feed on SQLite; on DynamoDB (whose stream the event-dispatch function
    /// reads in deployments) the new or rewritten items of the project's fed partitions.
    pub async fn dispatch_events(&self) {
        let dispatcher = plunk_worker::dispatch::Dispatcher {
            store: self.as_function("event-dispatch"),
            webhook_queue: self.state.webhook_queue.clone(),
            workflow_queue: self.workflow_queue.clone(),
        };
        if let Some(feed) = self.store.change_feed() {
            loop {
                let records = feed.read(100).await.unwrap();
                let Some(last) = records.last().map(|r| r.seq) else {
                    return;
                };
                let items: Vec<_> = records.into_iter().map(|r| r.item).collect();
                dispatcher.handle(&items).await.unwrap();
                feed.acknowledge(last).await.unwrap();
            }
        }
        // DynamoDB: what the stream would carry, found by reading the fed partitions and
        // keeping what was not handed over yet (contacts by version: every write is fed).
        let project = self.project.id;
        let mut partitions = vec![
            plunk_store::keys::events_partition(project),
            plunk_store::keys::contacts_partition(project),
        ];
        for segment in self.store.segments().all(project).await.unwrap() {
            partitions.push(plunk_store::keys::segment_members_partition(
                project, segment.id,
            ));
            partitions.push(
                plunk_store::keys::segment_departure(project, segment.id, uuid::Uuid::nil()).pk,
            );
        }
        let mut fresh = Vec::new();
        let mut seen = self.dispatched.lock().unwrap().clone();
        for partition in partitions {
            let mut query =
                plunk_store::table::Query::new(plunk_store::table::Index::Primary, partition);
            loop {
                let page = self.store.table().query(query.clone()).await.unwrap();
                for item in page.items {
                    let id = format!("{}|{}|{}", item.key.pk, item.key.sk, item.version);
                    if seen.insert(id) {
                        fresh.push(item);
                    }
                }
                match page.last {
                    Some(last) => query.start_after = Some(last),
                    None => break,
                }
            }
        }
        *self.dispatched.lock().unwrap() = seen;
        if fresh.is_empty() {
            return;
        }
        dispatcher.handle(&fresh).await.unwrap();
        // What the dispatch itself wrote (entry and exit events) comes round again, as on the
        // stream.
        Box::pin(self.dispatch_events()).await;
    }
}

impl TestApp {
    /// The workflow engine as the `workflow-worker` function runs it, over this app's queues.
    pub fn engine(&self) -> plunk_worker::workflows::engine::Engine {
        self.engine_at(0)
    }

    /// The engine with its clock `ahead_ms` ahead of the system's.
    pub fn engine_at(&self, ahead_ms: i64) -> plunk_worker::workflows::engine::Engine {
        let store = self.as_function("workflow-worker");
        plunk_worker::workflows::engine::Engine {
            acceptor: plunk_worker::accept::Acceptor {
                store: store.clone(),
                blobs: self.state.blobs.clone(),
                queues: self.state.send_queues.clone(),
            },
            store,
            queue: self.workflow_queue.clone(),
            allow_private_webhooks: true,
            clock: Arc::new(Ahead(ahead_ms)),
        }
    }

    /// Dispatches new events, then works the workflow queue until it is empty (messages
    /// delayed for later stay), repeating while the steps record new events.
    pub async fn run_workflows(&self) {
        self.run_workflows_at(0).await
    }

    /// [`Self::run_workflows`] `ahead_ms` in the future: the workflow timers due by then are
    /// queued first (as the scheduler's tick would), and the engine's clock reads that time.
    pub async fn run_workflows_at(&self, ahead_ms: i64) {
        let engine = self.engine_at(ahead_ms);
        let now_ms = plunk_worker::clock::Clock::now_ms(&Ahead(ahead_ms));
        plunk_worker::workflows::timers::work(
            &self.as_function("scheduler"),
            self.workflow_queue.as_ref(),
            now_ms,
            10_000,
        )
        .await
        .unwrap();
        for _ in 0..20 {
            self.dispatch_events().await;
            let messages = self
                .workflow_queue
                .receive(10, Duration::from_secs(60), Duration::ZERO)
                .await
                .unwrap();
            if messages.is_empty() {
                return;
            }
            for m in messages {
                assert!(
                    engine.handle(&m.body, &m.receipt).await,
                    "a workflow job failed"
                );
            }
        }
    }
}

/// Default settings for tests: key lookups are not cached, so key changes apply at once.
/// The system clock moved `.0` milliseconds ahead.
struct Ahead(i64);

#[async_trait::async_trait]
impl plunk_worker::clock::Clock for Ahead {
    fn now_ms(&self) -> i64 {
        plunk_worker::clock::SystemClock.now_ms() + self.0
    }

    async fn sleep_until_ms(&self, at_ms: i64) {
        plunk_worker::clock::SystemClock
            .sleep_until_ms(at_ms - self.0)
            .await
    }
}

pub fn test_settings() -> Settings {
    Settings {
        key_cache_ttl: Duration::ZERO,
        ..Settings::default()
    }
}

/// Runs an async test body on both backends, as `<name>::sqlite` and `<name>::dynamo`.
#[macro_export]
macro_rules! on_both_backends {
    ($( $(#[$meta:meta])* async fn $name:ident($app:ident: TestApp) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($app: $crate::common::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::common::TestApp::on($crate::common::Backend::Sqlite).await.unwrap()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dynamo() {
                    if let Some(app) = $crate::common::TestApp::on($crate::common::Backend::Dynamo).await {
                        run(app).await
                    }
                }
            }
        )*
    };
}
