//! `upsert-hot-path [N]`: the contact upsert hot path, in process, one operation at a time.
//!
//! Builds the whole HTTP service (`plunk_api::app`, as `plunk serve` mounts it, default settings:
//! key cache on) over the embedded SQLite store in a temporary file (WAL, like `make dev`), warms
//! up, then times N (default 20,000) `POST /contacts` that create new contacts and N that update
//! existing ones (data merge), each request built, routed, authenticated, rate-counted, stored and
//! its body read to the end. Then the same two phases straight on the store
//! (`store.contacts().upsert`), to show what the HTTP layer adds.
//!
//! Requests rotate over 16 projects so no project passes its limit of 30,000 requests a minute
//! (every request counts); the `errors` column counts unexpected statuses and must stay 0.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use plunk_bench::{print_table, Phase};
use plunk_domain::contact::DataChange;
use plunk_domain::event::SubscriptionSource;
use plunk_domain::project::{Project, Tracking, MAX_RATE_LIMIT};
use plunk_domain::EmailAddress;
use plunk_http_kit::{AppState, Settings};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

const PROJECTS: usize = 16;
const WARM_UP: usize = 1_000;

/// A project and its secret key's `Authorization` header.
struct ProjectRef {
    project: Project,
    bearer: String,
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("usage: upsert-hot-path [N]"))
        .unwrap_or(20_000);

    let dir = tempfile::tempdir().expect("temp dir");
    let table = SqliteTable::open(&dir.path().join("plunk.db")).expect("open sqlite");
    let store = Store::new(Arc::new(table));
    let mut projects = Vec::with_capacity(PROJECTS);
    for i in 0..PROJECTS {
        let (project, secret, _) = store
            .projects()
            .create(
                &format!("bench-{i}"),
                MAX_RATE_LIMIT,
                Tracking::Enabled,
                "en",
            )
            .await
            .expect("create project");
        projects.push(ProjectRef {
            project,
            bearer: format!("Bearer {}", secret.expose()),
        });
    }
    let app = plunk_api::app(AppState::new(store.clone(), Settings::default()));

    let post = |i: usize, email: String, data: serde_json::Value| {
        let project = &projects[i % PROJECTS];
        let body = json!({ "email": email, "data": data }).to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri("/contacts")
            .header("authorization", &project.bearer)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.expect("infallible service");
            let status = res.status();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            (status, bytes.len())
        }
    };

    for i in 0..WARM_UP {
        let email = format!("warm-{i}@bench.example");
        post(i, email.clone(), json!({ "plan": "free" })).await;
        post(i, email, json!({ "plan": "pro" })).await;
    }

    let mut phases = Vec::new();

    let mut phase = Phase::start("http POST /contacts (new)", n);
    for i in 0..n {
        let data = json!({ "firstName": "Ada", "plan": "free", "signup": i });
        let t = Instant::now();
        let (status, _) = post(i, format!("http-{i}@bench.example"), data).await;
        phase.record(t.elapsed(), status == StatusCode::CREATED);
    }
    phases.push(phase.finish());

    let mut phase = Phase::start("http POST /contacts (update)", n);
    for i in 0..n {
        let data = json!({ "plan": "pro", "visits": i, "lastName": "Lovelace" });
        let t = Instant::now();
        let (status, _) = post(i, format!("http-{i}@bench.example"), data).await;
        phase.record(t.elapsed(), status == StatusCode::OK);
    }
    phases.push(phase.finish());

    let contacts = store.contacts();
    let change = |data: serde_json::Value| {
        DataChange::parse(data.as_object().expect("object")).expect("valid data")
    };
    let email = |i: usize| EmailAddress::parse(&format!("store-{i}@bench.example")).expect("email");

    let mut phase = Phase::start("store upsert (new)", n);
    for i in 0..n {
        let (email, change) = (
            email(i),
            change(json!({ "firstName": "Ada", "plan": "free", "signup": i })),
        );
        let t = Instant::now();
        let outcome = contacts
            .upsert(
                projects[i % PROJECTS].project.id,
                &email,
                None,
                &change,
                SubscriptionSource::Api,
            )
            .await;
        phase.record(t.elapsed(), matches!(outcome, Ok(o) if o.is_new));
    }
    phases.push(phase.finish());

    let mut phase = Phase::start("store upsert (update)", n);
    for i in 0..n {
        let (email, change) = (
            email(i),
            change(json!({ "plan": "pro", "visits": i, "lastName": "Lovelace" })),
        );
        let t = Instant::now();
        let outcome = contacts
            .upsert(
                projects[i % PROJECTS].project.id,
                &email,
                None,
                &change,
                SubscriptionSource::Api,
            )
            .await;
        phase.record(t.elapsed(), matches!(outcome, Ok(o) if !o.is_new));
    }
    phases.push(phase.finish());

    println!(
        "upsert hot path: in process, embedded SQLite (file, WAL), {PROJECTS} projects, \
         {WARM_UP} warm-up creates + updates, one request at a time"
    );
    print_table(&phases);
    let failures: usize = phases.iter().map(Phase::failures).sum();
    if failures > 0 {
        eprintln!("upsert-hot-path: {failures} operation(s) had an unexpected outcome");
        std::process::exit(1);
    }
}
