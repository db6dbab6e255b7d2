//! `workflow-latency URL SECRET_KEY PUBLIC_KEY OUTBOX_DIR [N] [INTERVAL_MS]`: against a running
//! `plunk serve` whose mailer is the outbox, the time from a `POST /v1/track` (public key) to
//! the email of the first SEND_EMAIL step of the workflow that event starts being written to
//! the outbox.
//!
//! It registers and verifies a sending domain, creates a template and a workflow `signed_up` →
//! SEND_EMAIL, enables it, then tracks `signed_up` for N (200) new contacts one every INTERVAL_MS
//! (250 ms, under the 14/s send pace so pacing is not what is measured) while watching the
//! outbox for each contact's email. The path measured is the whole local pipeline: the event
//! stored, read from the change feed by the dispatcher, the execution started and its message
//! worked by the engine, the email accepted at workflow priority, sent by the send worker.
//!
//! Prints `RESULT emails=… p50_ms=… p90_ms=… p99_ms=… max_ms=… missing=…`; exits 1 when an
//! email did not arrive within 30 s.

// The deployed binaries' allocator.
use plunk_bench as _;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOMAIN: &str = "latency.example";

struct Api {
    client: reqwest::Client,
    base: String,
    secret: String,
}

impl Api {
    /// Sends a request with the secret key; the response's `data`, or exits on a failure.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.secret));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body["data"].clone()
    }
}

/// Who each outbox file is addressed to (the `To:` header), for files not seen before.
fn new_recipients(dir: &PathBuf, seen: &mut HashSet<String>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".eml") || !seen.insert(name) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(to) = text
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("To: "))
        {
            // `To: <address>` or `To: "Name" <address>`.
            let to = to.trim();
            let address = match (to.rfind('<'), to.rfind('>')) {
                (Some(open), Some(close)) if open < close => &to[open + 1..close],
                _ => to,
            };
            out.push(address.to_owned());
        }
    }
    out
}

#[tokio::main]
async fn main() {
    let usage = "usage: workflow-latency URL SECRET_KEY PUBLIC_KEY OUTBOX_DIR [N] [INTERVAL_MS]";
    let mut args = std::env::args().skip(1);
    let base = args.next().expect(usage);
    let secret = args.next().expect(usage);
    let public = args.next().expect(usage);
    let outbox = PathBuf::from(args.next().expect(usage));
    let n: usize = args.next().map_or(200, |s| s.parse().expect(usage));
    let interval = Duration::from_millis(args.next().map_or(250, |s| s.parse().expect(usage)));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let api = Api {
        client: reqwest::Client::new(),
        base: base.clone(),
        secret,
    };
    use reqwest::Method;

    let domain = api
        .call(Method::POST, "/domains", Some(json!({"domain": DOMAIN})))
        .await;
    let domain_id = domain["id"].as_str().expect("domain id");
    let verified = api
        .call(Method::POST, &format!("/domains/{domain_id}/verify"), None)
        .await;
    assert_eq!(verified["verified"], json!(true), "domain not verified");
    let template = api
        .call(
            Method::POST,
            "/templates",
            Some(
                json!({"name": "Welcome", "subject": "Welcome", "type": "TRANSACTIONAL",
                "body": "<p>Thanks for signing up ({{ event.source }}).</p>",
                "from": format!("hello@{DOMAIN}")}),
            ),
        )
        .await;
    let workflow = api
        .call(
            Method::POST,
            "/workflows",
            Some(json!({"name": "latency", "eventName": "signed_up"})),
        )
        .await;
    let wf = workflow["id"].as_str().expect("workflow id");
    api.call(
        Method::POST,
        &format!("/workflows/{wf}/steps"),
        Some(
            json!({"type": "SEND_EMAIL", "name": "Welcome", "position": {"x": 0, "y": 100},
            "templateId": template["id"], "autoConnect": true}),
        ),
    )
    .await;
    api.call(
        Method::PATCH,
        &format!("/workflows/{wf}"),
        Some(json!({"enabled": true})),
    )
    .await;

    // The watcher: arrival time of each recipient's email.
    let run = std::process::id();
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (arrived, stop, outbox) = (arrived.clone(), stop.clone(), outbox.clone());
        tokio::task::spawn_blocking(move || {
            let mut seen = HashSet::new();
            // Files already there are someone else's.
            new_recipients(&outbox, &mut seen);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = Instant::now();
                for to in new_recipients(&outbox, &mut seen) {
                    arrived.lock().expect("arrived").insert(to, now);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(n);
    let mut next = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let email = format!("lat-{run}-{i}@dest.example");
        let t = Instant::now();
        let res = api
            .client
            .post(format!("{base}/v1/track"))
            .header("authorization", format!("Bearer {public}"))
            .header("content-type", "application/json")
            .body(
                json!({"event": "signed_up", "email": email, "data": {"source": "bench"}})
                    .to_string(),
            )
            .send()
            .await
            .expect("track");
        assert!(res.status().is_success(), "track: {}", res.status());
        sent.push((email, t));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && arrived.lock().expect("arrived").len() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.await.expect("watcher");

    let arrived = arrived.lock().expect("arrived").clone();
    let mut phase = plunk_bench::Phase::start("track → outbox", n);
    let mut missing = 0;
    for (email, t) in &sent {
        match arrived.get(email) {
            Some(at) => phase.record(at.saturating_duration_since(*t), true),
            None => missing += 1,
        }
    }
    let phase = phase.finish();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "RESULT emails={} p50_ms={} p90_ms={} p99_ms={} max_ms={} missing={missing}",
        n - missing,
        ms(phase.percentile(50.0)),
        ms(phase.percentile(90.0)),
        ms(phase.percentile(99.0)),
        ms(phase.percentile(100.0)),
    );
    if missing > 0 {
        std::process::exit(1);
    }
}
