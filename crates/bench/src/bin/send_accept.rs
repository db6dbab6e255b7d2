//! `send-accept [N]`: the `POST /v1/send` accept path, in process, one request at a time.
//!
//! The whole HTTP service (`plunk_api::app`, default settings: key cache on) over the embedded
//! SQLite store in a temporary file (WAL) and the embedded send queues in the same directory, as
//! `plunk serve` runs them (no consumer, so the queues only grow). 16 projects, each with a
//! verified sending domain; requests rotate over them. After 500 warm-up sends it times:
//! - N sends of one recipient (inline subject and HTML) to new addresses: validation, sender
//!   check, contact created, email record and content written, one job queued;
//! - the same N addresses again (existing contacts);
//! - the same with an `Idempotency-Key` (a new key each request: the key record is written too);
//! - N / 50 sends of 50 recipients each.
//!
//! N defaults to 5,000 (`BENCH_N` or the first argument). The `errors` column counts replies other
//! than 200 with the expected number of emails and must stay 0.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use plunk_bench::inproc::{self, Api};
use plunk_bench::{print_table, Phase};
use plunk_http_kit::{AppState, Settings};
use plunk_messaging::send_queues::SendQueues;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

const PROJECTS: usize = 16;
const WARM_UP: usize = 500;

/// One `/v1/send`; true when it answered 200 with `expected` emails.
async fn send(app: &Api, bearer: &str, body: &Value, key: Option<&str>, expected: usize) -> bool {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/send")
        .header("authorization", bearer)
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible service");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    if status != StatusCode::OK {
        return false;
    }
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["data"]["emails"].as_array().map(Vec::len))
        == Some(expected)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_N").ok())
        .map(|a| a.parse().expect("usage: send-accept [N]"))
        .unwrap_or(5_000);

    let dir = tempfile::tempdir().expect("temp dir");
    let table = SqliteTable::open(&dir.path().join("plunk.db")).expect("open sqlite");
    let store = Store::new(Arc::new(table));
    let queues_db = dir.path().join("queues.db");
    let queues = SendQueues::embedded(&queues_db).expect("embedded queues");
    let app =
        plunk_api::app(AppState::new(store.clone(), Settings::default()).with_send_queues(queues));
    let mut bearers = Vec::with_capacity(PROJECTS);
    for i in 0..PROJECTS {
        let domain = format!("p{i}.bench.example");
        let (_, bearer) =
            inproc::project_with_domain(&store, &app, &format!("bench-{i}"), &domain).await;
        bearers.push((bearer, format!("billing@{domain}")));
    }
    let body = |i: usize, to: Vec<String>| inproc::send_body(&to, &bearers[i % PROJECTS].1);

    for i in 0..WARM_UP {
        send(
            &app,
            &bearers[i % PROJECTS].0,
            &body(i, vec![format!("warm-{i}@rcpt.example")]),
            None,
            1,
        )
        .await;
    }

    let mut phases = Vec::new();
    for (name, prefix, idempotent) in [
        ("http POST /v1/send (1, new contact)", "a", false),
        ("http POST /v1/send (1, existing contact)", "a", false),
        ("  + Idempotency-Key", "a", true),
    ] {
        let mut phase = Phase::start(name, n);
        for i in 0..n {
            let b = body(i, vec![format!("{prefix}-{i}@rcpt.example")]);
            let key = idempotent.then(|| format!("order-{i}"));
            let t = Instant::now();
            let ok = send(&app, &bearers[i % PROJECTS].0, &b, key.as_deref(), 1).await;
            phase.record(t.elapsed(), ok);
        }
        phases.push(phase.finish());
    }
    let batches = (n / 50).max(10);
    let mut phase = Phase::start("http POST /v1/send (50, new contacts)", batches);
    for i in 0..batches {
        let to = (0..50).map(|j| format!("b-{i}-{j}@rcpt.example")).collect();
        let b = body(i, to);
        let t = Instant::now();
        let ok = send(&app, &bearers[i % PROJECTS].0, &b, None, 50).await;
        phase.record(t.elapsed(), ok);
    }
    phases.push(phase.finish());

    println!(
        "send accept path: in process, embedded SQLite (file, WAL) and embedded queues, {PROJECTS} projects with verified \
         domains, inline HTML, {WARM_UP} warm-up sends, one request at a time"
    );
    print_table(&phases);
    let failures: usize = phases.iter().map(Phase::failures).sum();
    if failures > 0 {
        eprintln!("send-accept: {failures} request(s) had an unexpected outcome");
        std::process::exit(1);
    }
}
