//! Feeds the API Gateway v2 event fixtures in `tests/events/` through the real Lambda binaries.
//!
//! The test plays the Lambda Runtime API (the HTTP interface a function polls for events, as
//! `sam local invoke` and cargo-lambda do), starts the compiled binary against it on the embedded
//! store, and checks the responses the binary posts back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::project::Tracking;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use serde_json::Value;
use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

#[derive(Clone)]
struct Runtime {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    ready: Arc<Notify>,
    results: mpsc::UnboundedSender<(String, Value)>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    loop {
        let ready = rt.ready.notified();
        let event = rt.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            h.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from(deadline as u64),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (h, event.to_string());
        }
        ready.await;
    }
}

async fn respond(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = rt.results.send((id, value));
    "{}"
}

async fn error(State(rt): State<Runtime>, body: String) -> &'static str {
    let _ = rt.results.send(("error".into(), Value::String(body)));
    "{}"
}

/// A function binary running against a fake Runtime API.
struct Function {
    child: Child,
    runtime: Runtime,
    results: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Function {
    async fn start(binary: &str, data_dir: &std::path::Path) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = Runtime {
            events: Arc::default(),
            ready: Arc::default(),
            results: tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let child = Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "group")
            .env("PLUNK_STORE", "sqlite")
            .env("PLUNK_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("function binary starts");
        Self {
            child,
            runtime,
            results: rx,
        }
    }

    /// Sends one event and waits for the function's response.
    async fn invoke(&mut self, event: Value) -> Value {
        let id = uuid_like();
        self.runtime
            .events
            .lock()
            .unwrap()
            .push_back((id.clone(), event));
        self.runtime.ready.notify_waiters();
        let (got, value) = tokio::time::timeout(Duration::from_secs(30), self.results.recv())
            .await
            .expect("function answers within 30 s")
            .expect("runtime channel open");
        assert_eq!(got, id, "function reported an error: {value}");
        value
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn fixture(name: &str, secret: &str) -> Value {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("__SECRET_KEY__", secret)).unwrap()
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

async fn project_store(dir: &std::path::Path) -> (Store, String) {
    let store = Store::new(Arc::new(SqliteTable::open(&dir.join("plunk.db")).unwrap()));
    let (_, secret, _) = store
        .projects()
        .create("Lambda", 1000, Tracking::Enabled, "en")
        .await
        .unwrap();
    (store, secret.expose().to_owned())
}

#[tokio::test]
async fn the_contacts_binary_answers_api_gateway_v2_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, secret) = project_store(dir.path()).await;
    let mut function = Function::start(env!("CARGO_BIN_EXE_contacts"), dir.path()).await;

    let created = function
        .invoke(fixture("contacts-create.json", &secret))
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let headers = &created["headers"];
    assert_eq!(
        headers["x-request-id"], "K4uYbhHqIAMEVcQ=",
        "the gateway's request id is used"
    );
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(headers["ratelimit-limit"], "1000");
    let contact = body(&created)["data"].clone();
    assert_eq!(contact["email"], "ada@example.org");
    assert_eq!(contact["data"]["plan"], "team");

    let listed = function
        .invoke(fixture("contacts-list.json", &secret))
        .await;
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert_eq!(body(&listed)["data"]["items"][0]["id"], contact["id"]);
    assert_eq!(body(&listed)["data"]["total"], 1);

    let missing = function
        .invoke(fixture("contacts-get-missing.json", &secret))
        .await;
    assert_eq!(missing["statusCode"], 404);
    assert_eq!(body(&missing)["error"]["code"], "CONTACT_NOT_FOUND");

    let anonymous = function
        .invoke(fixture("contacts-no-auth.json", &secret))
        .await;
    assert_eq!(anonymous["statusCode"], 401);
    assert_eq!(body(&anonymous)["error"]["code"], "MISSING_AUTH");

    // What the function wrote is in the shared store.
    let project = store.projects().list().await.unwrap()[0].clone();
    assert_eq!(store.contacts().counts(project.id).await.unwrap(), (1, 1));
}

#[tokio::test]
async fn the_system_binary_serves_health_and_no_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = project_store(dir.path()).await;
    let mut function = Function::start(env!("CARGO_BIN_EXE_system"), dir.path()).await;
    let mut event = fixture("contacts-no-auth.json", &secret);
    event["rawPath"] = "/health".into();
    event["requestContext"]["http"]["path"] = "/health".into();
    let health = function.invoke(event.clone()).await;
    assert_eq!(health["statusCode"], 200, "{health}");
    assert_eq!(body(&health)["data"]["status"], "ok");

    event["rawPath"] = "/contacts".into();
    event["requestContext"]["http"]["path"] = "/contacts".into();
    let other = function.invoke(event).await;
    assert_eq!(
        other["statusCode"], 404,
        "each function serves only its own group"
    );
}
