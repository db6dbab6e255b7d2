//! `track-accept [N]`: the `POST /v1/track` accept path, in process, one request at a time.
//!
//! The whole HTTP service (`plunk_api::app`, default settings: key cache on) over the embedded
//! SQLite store in a temporary file (WAL), with its change feed (each new event also lands in the
//! feed table, in the same transaction, as in `plunk serve`; nothing consumes it here). 16
//! projects, called with their public keys as a browser would. After 500 warm-up events it times:
//! - N events for new contacts (contact created, event stored);
//! - N events for the same, now existing, contacts (data merged, event stored);
//! - the same with an `Idempotency-Key` (a new key each request: the key record is written too).
//!
//! Then it checks that the store holds exactly one event per 200 response. N defaults to 5,000
//! (`BENCH_N` or the first argument); the `errors` column must stay 0.

use axum::http::{Method, StatusCode};
use plunk_bench::inproc::{self, Api};
use plunk_bench::{print_table, Phase};
use plunk_domain::project::Tracking;
use plunk_http_kit::{AppState, Settings};
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::table::{Index, Query};
use plunk_store::Store;
use serde_json::json;
use std::time::Instant;
use uuid::Uuid;

const PROJECTS: usize = 16;
const WARM_UP: usize = 500;

async fn track(app: &Api, bearer: &str, i: usize, prefix: &str, key: Option<&str>) -> bool {
    let body = json!({"event": "page_view", "email": format!("{prefix}-{i}@visitor.example"),
        "data": {"path": format!("/pricing/{}", i % 7), "plan": "free"}});
    let reply = match key {
        None => inproc::call(app, Method::POST, "/v1/track", bearer, Some(&body)).await,
        Some(key) => {
            inproc::call_with_headers(
                app,
                Method::POST,
                "/v1/track",
                bearer,
                Some(&body),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    reply.status == StatusCode::OK && reply.body["data"]["event"].is_string()
}

async fn stored_events(store: &Store, project: Uuid) -> usize {
    let mut query = Query::new(Index::Primary, plunk_store::keys::events_partition(project));
    query.limit = 1000;
    let mut count = 0;
    loop {
        let page = store.table().query(query.clone()).await.expect("query");
        count += page
            .items
            .iter()
            .filter(|i| i.body["name"] == "page_view")
            .count();
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return count,
        }
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_N").ok())
        .map(|a| a.parse().expect("usage: track-accept [N]"))
        .unwrap_or(5_000);

    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::sqlite(SqliteTable::open(&dir.path().join("plunk.db")).expect("open sqlite"));
    let app = plunk_api::app(AppState::new(store.clone(), Settings::default()));
    let mut projects = Vec::with_capacity(PROJECTS);
    for i in 0..PROJECTS {
        let (project, _, public) = store
            .projects()
            .create(&format!("bench-{i}"), 1_000_000, Tracking::Enabled, "en")
            .await
            .expect("project");
        projects.push((project.id, format!("Bearer {}", public.expose())));
    }
    let bearer = |i: usize| projects[i % PROJECTS].1.as_str();
    for i in 0..WARM_UP {
        track(&app, bearer(i), i, "warm", None).await;
    }

    let mut phases = Vec::new();
    let mut ok_count = WARM_UP;
    for (name, idempotent) in [
        ("http POST /v1/track (new contact)", false),
        ("http POST /v1/track (existing contact)", false),
        ("  + Idempotency-Key", true),
    ] {
        let mut phase = Phase::start(name, n);
        for i in 0..n {
            let key = idempotent.then(|| format!("evt-{i}"));
            let t = Instant::now();
            let ok = track(&app, bearer(i), i, "v", key.as_deref()).await;
            phase.record(t.elapsed(), ok);
            ok_count += usize::from(ok);
        }
        phases.push(phase.finish());
    }
    println!(
        "track accept path: in process, embedded SQLite (file, WAL) with its change feed, {PROJECTS} projects, \
         public keys, {WARM_UP} warm-up events, one request at a time"
    );
    print_table(&phases);
    let mut stored = 0;
    for (project, _) in &projects {
        stored += stored_events(&store, *project).await;
    }
    println!("events stored: {stored}, 200 responses: {ok_count}");
    let failures: usize = phases.iter().map(Phase::failures).sum();
    if failures > 0 || stored != ok_count {
        eprintln!(
            "track-accept: {failures} unexpected outcome(s); {stored} events for {ok_count} 200s"
        );
        std::process::exit(1);
    }
}
