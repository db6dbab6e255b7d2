//! `hostile-traffic PLUNK [SECONDS]`: normal mail from three projects on `plunk serve`, first
//! alone, then interleaved with a fourth project sending every hostile request the hardening
//! work answers (templates that overflow, loop or bloat, literals past 64 bits, a public key
//! re-subscribing and flooding, bad keys, disguised attachment names, a domain in use, requests
//! the HTTP parser refuses, control characters, event deletion races, the outbox's HTML).
//!
//! For each run it prints the normal emails' send wait (`sentAt − queuedAt`, p50/p99), how many
//! were delivered, the server's peak memory (VmHWM) and the panics in its log; then the ratio of
//! the two p99s. Exits 1 when a normal email was not delivered or the server panicked.

// The deployed binaries' allocator.
use plunk_bench as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `plunk serve` on a fresh data directory.
struct Server {
    child: Child,
    base: String,
    data: tempfile::TempDir,
    log: std::path::PathBuf,
    plunk: String,
}

impl Server {
    fn start(plunk: &str) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let log = data.path().join("serve.log");
        let mut child = Command::new(plunk)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("PLUNK_DATA_DIR", data.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("plunk serve");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut base = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Serving the API at ") {
                base = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                break;
            }
        }
        assert!(!base.is_empty(), "plunk serve did not start");
        Server {
            child,
            base,
            data,
            log,
            plunk: plunk.to_owned(),
        }
    }

    /// A new project: (secret key, public key).
    fn project(&self, name: &str) -> (String, String) {
        let out = Command::new(&self.plunk)
            .args(["project", "create", "--name", name, "--json"])
            .env("PLUNK_DATA_DIR", self.data.path().join("data"))
            .output()
            .expect("plunk project create");
        let v: Value = serde_json::from_slice(&out.stdout).expect("project json");
        (
            v["secretKey"].as_str().unwrap_or_default().to_owned(),
            v["publicKey"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Peak resident memory in MiB (Linux).
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn panics(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("panicked")
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small HTTP client for one server.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let bytes = res.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn verified_domain(&self, key: &str, domain: &str) {
        let (_, created) = self
            .call(
                "POST",
                "/domains",
                Some(key),
                Some(json!({"domain": domain})),
                &[],
            )
            .await;
        let id = created["data"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.call(
            "POST",
            &format!("/domains/{id}/verify"),
            Some(key),
            None,
            &[],
        )
        .await;
    }
}

/// Sends raw bytes and reads the status line (requests reqwest will not make).
fn raw(base: &str, request: &[u8]) -> u16 {
    let Ok(mut stream) = std::net::TcpStream::connect(base.trim_start_matches("http://")) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One round of every hostile request, from project `key`/`public` sending from `domain`.
async fn hostile_round(api: &Api, key: &str, public: &str, domain: &str, round: usize) -> Vec<u16> {
    let from = format!("x@{domain}");
    let send = |body: Value| {
        let mut body = body;
        body["from"] = json!(from);
        body
    };
    let mut statuses = Vec::new();
    let sends = [
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "{{ -9223372036854775808 | divided_by: -1 }}"}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "{{ 99999999999999999999 }}", "body": "b"}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "{% for i in (1..100000000) %}x{% endfor %}"}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "{% for i in (1..n) %}x{% endfor %}", "data": {"n": {"value": 1_000_000_000, "persistent": false}}}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "{% assign s = 'xx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}"}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "nul\u{0}byte", "attachments": [{"filename": "logo.png", "content": "iVBORw==", "contentType": "image/png", "contentId": "logo"}]}),
        ),
        send(
            json!({"to": "a@victim.example", "subject": "s", "body": "b", "attachments": [{"filename": "evil.exe.", "content": "aGk=", "contentType": "application/octet-stream"}]}),
        ),
    ];
    for (i, body) in sends.into_iter().enumerate() {
        let idem = format!("hostile-{round}-{i}");
        statuses.push(
            api.call(
                "POST",
                "/v1/send",
                Some(key),
                Some(body),
                &[("idempotency-key", &idem)],
            )
            .await
            .0,
        );
    }
    // The public key: re-subscribing someone who left, with markup in their data, then a flood.
    api.call(
        "POST",
        "/contacts",
        Some(key),
        Some(json!({"email": "left@victim.example", "subscribed": false})),
        &[],
    )
    .await;
    statuses.push(api.call("POST", "/v1/track", Some(public), Some(json!({"event": "clicked", "email": "left@victim.example", "subscribed": true, "data": {"name": "<a href='https://phish.example'>click</a>"}})), &[]).await.0);
    for i in 0..150 {
        statuses.push(
            api.call(
                "POST",
                "/v1/track",
                Some(public),
                Some(json!({"event": "flood", "email": format!("f{i}@victim.example")})),
                &[],
            )
            .await
            .0,
        );
    }
    // Bad keys.
    let bad = format!("sk_{}", "Z".repeat(43));
    for _ in 0..100 {
        statuses.push(
            api.call("POST", "/v1/send", Some(&bad), Some(json!({})), &[])
                .await
                .0,
        );
    }
    // A domain in use, an event name deleted right after tracking, the document.
    api.call(
        "POST",
        "/templates",
        Some(key),
        Some(json!({"name": "t", "subject": "s", "body": "b", "from": from})),
        &[],
    )
    .await;
    let (_, domains) = api.call("GET", "/domains", Some(key), None, &[]).await;
    if let Some(id) = domains["data"]["items"][0]["id"].as_str() {
        statuses.push(
            api.call("DELETE", &format!("/domains/{id}"), Some(key), None, &[])
                .await
                .0,
        );
    }
    api.call(
        "POST",
        "/v1/track",
        Some(key),
        Some(json!({"event": "burst", "email": "e@victim.example"})),
        &[],
    )
    .await;
    statuses.push(
        api.call("DELETE", "/events/burst", Some(key), None, &[])
            .await
            .0,
    );
    statuses.push(api.call("GET", "/openapi.json", None, None, &[]).await.0);
    // Requests the HTTP parser refuses.
    let base = api.base.clone();
    let parser = tokio::task::spawn_blocking(move || {
        let long = format!(
            "GET /contacts?search={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(70_000)
        );
        let many: String = (0..600).map(|i| format!("X-F{i}: v\r\n")).collect();
        [
            raw(&base, long.as_bytes()),
            raw(
                &base,
                format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
            ),
        ]
    })
    .await
    .unwrap_or_default();
    statuses.extend(parser);
    statuses
}

/// What one run measured.
struct Report {
    sent: usize,
    delivered: usize,
    p50_ms: f64,
    p99_ms: f64,
    peak_mib: f64,
    panics: usize,
    hostile_requests: usize,
    hostile_5xx: usize,
}

/// Milliseconds since the epoch of a timestamp member.
fn parse_ms(v: &Value) -> Option<i64> {
    plunk_domain::Timestamp::parse_rfc3339(v.as_str()?).map(|t| t.unix_millis())
}

async fn run(plunk: &str, seconds: u64, hostile: bool) -> Report {
    let server = Server::start(plunk);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        base: server.base.clone(),
    };
    let mut normal = Vec::new();
    for i in 0..3 {
        let (key, _) = server.project(&format!("normal-{i}"));
        api.verified_domain(&key, &format!("normal{i}-{}.example", std::process::id()))
            .await;
        normal.push((key, format!("normal{i}-{}.example", std::process::id())));
    }
    let (hostile_key, hostile_public) = server.project("hostile");
    let hostile_domain = format!("hostile-{}.example", std::process::id());
    api.verified_domain(&hostile_key, &hostile_domain).await;

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut senders = tokio::task::JoinSet::new();
    for (key, domain) in normal.clone() {
        let api = api.clone();
        senders.spawn(async move {
            let mut ids = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = json!({"to": format!("customer{n}@example.org"), "from": format!("shop@{domain}"),
                    "subject": "Order {{ order }}", "body": "<p>Thanks {{ name ?? 'there' }}, order {{ order }} is on its way.</p>",
                    "data": {"order": n, "name": "Ada"}});
                let (status, res) = api.call("POST", "/v1/send", Some(&key), Some(body), &[]).await;
                if status == 200 {
                    if let Some(id) = res["data"]["emails"][0]["email"].as_str() {
                        ids.push((key.clone(), id.to_owned()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(2000)).await;
            }
            ids
        });
    }
    let mut hostile_statuses = Vec::new();
    if hostile {
        let mut round = 0;
        while Instant::now() < deadline {
            round += 1;
            hostile_statuses.extend(
                hostile_round(&api, &hostile_key, &hostile_public, &hostile_domain, round).await,
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mut ids = Vec::new();
    while let Some(done) = senders.join_next().await {
        ids.extend(done.unwrap_or_default());
    }
    // Let the queue drain, then read every normal email.
    let drained = Instant::now() + Duration::from_secs(60);
    let mut waits = Vec::new();
    let mut delivered = 0;
    for (key, id) in &ids {
        loop {
            let (_, email) = api
                .call("GET", &format!("/emails/{id}"), Some(key), None, &[])
                .await;
            let status = email["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if status == "DELIVERED" || Instant::now() > drained {
                if status == "DELIVERED" {
                    delivered += 1;
                }
                if let (Some(queued), Some(sent)) = (
                    parse_ms(&email["data"]["queuedAt"]),
                    parse_ms(&email["data"]["sentAt"]),
                ) {
                    waits.push((sent - queued) as f64);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    waits.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        waits
            .get(((q / 100.0) * waits.len() as f64).ceil().max(1.0) as usize - 1)
            .copied()
            .unwrap_or(0.0)
    };
    Report {
        sent: ids.len(),
        delivered,
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
        peak_mib: server.peak_mib(),
        panics: server.panics(),
        hostile_requests: hostile_statuses.len(),
        hostile_5xx: hostile_statuses
            .iter()
            .filter(|s| **s >= 500 || **s == 0)
            .count(),
    }
}

fn print(name: &str, r: &Report) {
    println!(
        "  {name:<14} normal emails {:>5}, delivered {:>5}, send wait p50 {:>7.0} ms, p99 {:>7.0} ms, peak memory {:>6.1} MiB, panics {}, hostile requests {} ({} 5xx or no answer)",
        r.sent, r.delivered, r.p50_ms, r.p99_ms, r.peak_mib, r.panics, r.hostile_requests, r.hostile_5xx
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let plunk = args.next().expect("usage: hostile-traffic PLUNK [SECONDS]");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(600);
    println!("hostile traffic: {seconds} s of normal mail from 3 projects, alone and beside a hostile 4th");
    let baseline = run(&plunk, seconds, false).await;
    print("alone", &baseline);
    let hostile = run(&plunk, seconds, true).await;
    print("with hostile", &hostile);
    let ratio = hostile.p99_ms / baseline.p99_ms.max(1.0);
    println!(
        "  p99 send wait with the hostile project: {ratio:.2}× the run without it (target ≤ 2×)"
    );
    let failed = baseline.delivered < baseline.sent
        || hostile.delivered < hostile.sent
        || baseline.panics + hostile.panics > 0
        || hostile.hostile_5xx > 0;
    if failed {
        println!("  FAILED: undelivered normal mail, a panic, or a hostile request answered 5xx");
        std::process::exit(1);
    }
}
