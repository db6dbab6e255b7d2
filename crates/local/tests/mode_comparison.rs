//! The same scripted scenario against `plunk serve` on SQLite and on DynamoDB (DynamoDB Local):
//! every endpoint group, the same requests, and the answers diffed after ids, times, keys and
//! cursors are masked. The two stores are one product; where they answer differently, this test
//! names every step that differs. Needs DynamoDB Local (`PLUNK_TEST_DYNAMODB_ENDPOINT`); set
//! `PLUNK_PRINT_TRANSCRIPT=1` to see the masked transcript of the SQLite run.

mod common;

use common::Server;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any piece of background work (dispatch, delivery, webhooks) may take to show.
const SETTLE: Duration = Duration::from_secs(30);

/// One answer, masked: what the transcript of a run is made of.
struct Step {
    label: String,
    status: u16,
    body: Value,
}

/// Replaces what legitimately differs between two runs (ids, times, secrets, cursors, the
/// receiver's port) with placeholders numbered by first appearance, so equal structure compares
/// equal and a reference to an id still has to point at the same thing.
#[derive(Default)]
struct Masker {
    seen: HashMap<String, String>,
    /// Exact strings known to differ per run (the receiver URL), with their placeholder.
    fixed: Vec<(String, String)>,
}

impl Masker {
    fn mask(&mut self, value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let masked = match (k.as_str(), v) {
                        (_, Value::Null) => Value::Null,
                        ("cursor" | "nextCursor", _) => json!("<cursor>"),
                        // How long an attempt took is the machine's business.
                        ("durationMs" | "latencyMs", Value::Number(_)) => json!("<ms>"),
                        _ => self.mask(v),
                    };
                    out.insert(k.clone(), masked);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.mask(v)).collect()),
            Value::String(s) => Value::String(self.mask_text(s)),
            other => other.clone(),
        }
    }

    fn mask_text(&mut self, text: &str) -> String {
        let mut text = text.to_owned();
        for (exact, placeholder) in &self.fixed {
            text = text.replace(exact.as_str(), placeholder);
        }
        if chrono::DateTime::parse_from_rfc3339(&text).is_ok() {
            return "<time>".into();
        }
        if chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").is_ok() {
            return "<date>".into();
        }
        for prefix in ["sk_", "pk_", "whsec_"] {
            if text.starts_with(prefix) {
                return format!("<{prefix}>");
            }
        }
        // Every UUID inside the text (ids, and ids inside links and tokens) by first appearance.
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some((start, uuid)) = find_uuid(rest) {
            out.push_str(&rest[..start]);
            let next = self.seen.len() + 1;
            let name = self
                .seen
                .entry(uuid.to_owned())
                .or_insert_with(|| format!("<id{next}>"));
            out.push_str(name);
            rest = &rest[start + uuid.len()..];
        }
        out.push_str(rest);
        out
    }
}

/// The first UUID in `text`, with its byte offset.
fn find_uuid(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(35)).find_map(|i| {
        let candidate = text.get(i..i + 36)?;
        uuid::Uuid::try_parse(candidate)
            .ok()
            .filter(|_| candidate.as_bytes()[8] == b'-')
            .map(|_| (i, candidate))
    })
}

/// One server under the script: it records every answer, masked.
struct Run<'a> {
    server: &'a Server,
    secret: String,
    public: String,
    masker: Masker,
    steps: Vec<Step>,
}

impl Run<'_> {
    /// Sends a request with the secret key and records the answer; returns the raw body.
    fn call(&mut self, label: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let key = self.secret.clone();
        self.call_with(label, method, path, Some(&key), body)
    }

    fn call_with(
        &mut self,
        label: &str,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, res) = self.server.request(method, path, key, body);
        let value: Value = res.into_json().unwrap_or(Value::Null);
        self.record(label, status, &value);
        value
    }

    fn record(&mut self, label: &str, status: u16, value: &Value) {
        let body = self.masker.mask(value);
        self.steps.push(Step {
            label: label.to_owned(),
            status,
            body,
        });
    }

    /// Polls `path` (unrecorded) until `done` holds, at most [`SETTLE`]; then records it once.
    fn settle(&mut self, label: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, res) = self.server.request("GET", path, Some(&self.secret), None);
            let value: Value = res.into_json().unwrap_or(Value::Null);
            if done(&value) || Instant::now() > deadline {
                self.record(label, status, &value);
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn id(value: &Value) -> String {
    match value["data"]["id"].as_str() {
        Some(id) => id.to_owned(),
        None => panic!("expected an id in {value}"),
    }
}

fn count_of(names: &Value, name: &str) -> i64 {
    names["data"]["names"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == name))
        .and_then(|n| n["count"].as_i64())
        .unwrap_or(0)
}

/// The script: every endpoint group in the order a user meets them.
fn script(run: &mut Run, hook_url: &str, hooks: &mpsc::Receiver<Value>) {
    run.masker
        .fixed
        .push((hook_url.to_owned(), "<hook>".into()));
    let public = run.public.clone();

    // System and auth.
    run.call_with("health", "GET", "/health", None, None);
    run.call_with("no key", "GET", "/contacts", None, None);
    run.call_with(
        "public key on a secret route",
        "GET",
        "/contacts",
        Some(&public),
        None,
    );

    // Webhooks first, so every later event is delivered.
    let hook = run.call(
        "create webhook",
        "POST",
        "/webhooks",
        Some(json!({"url": hook_url})),
    );
    let hook_id = id(&hook);
    run.call("list webhooks", "GET", "/webhooks", None);
    run.call(
        "bad webhook",
        "POST",
        "/webhooks",
        Some(json!({"url": "ftp://x"})),
    );

    // Domains.
    let domain = run.call(
        "create domain",
        "POST",
        "/domains",
        Some(json!({"domain": "acme.io"})),
    );
    let domain_id = id(&domain);
    run.call(
        "verify domain",
        "POST",
        &format!("/domains/{domain_id}/verify"),
        None,
    );
    run.call("read domain", "GET", &format!("/domains/{domain_id}"), None);
    run.call("list domains", "GET", "/domains", None);
    run.call(
        "duplicate domain",
        "POST",
        "/domains",
        Some(json!({"domain": "acme.io"})),
    );

    // Contacts.
    let ada = run.call(
        "create ada",
        "POST",
        "/contacts",
        Some(json!({"email": "ada@example.org", "subscribed": true, "data": {"plan": "pro", "seats": 3}})),
    );
    let ada_id = id(&ada);
    let bob = run.call(
        "create bob",
        "POST",
        "/contacts",
        Some(json!({"email": "bob@example.org", "subscribed": false})),
    );
    let bob_id = id(&bob);
    run.call(
        "upsert ada",
        "POST",
        "/contacts",
        Some(json!({"email": "ada@example.org", "data": {"seats": 4}})),
    );
    run.call(
        "patch bob",
        "PATCH",
        &format!("/contacts/{bob_id}"),
        Some(json!({"data": {"plan": "free"}})),
    );
    run.call("read ada", "GET", &format!("/contacts/{ada_id}"), None);
    run.call(
        "lookup bob",
        "POST",
        "/contacts/lookup",
        Some(json!({"email": "bob@example.org"})),
    );
    run.call("list contacts", "GET", "/contacts?limit=1", None);
    run.call(
        "list contacts, empty cursor",
        "GET",
        "/contacts?cursor=",
        None,
    );
    run.call(
        "bad contact",
        "POST",
        "/contacts",
        Some(json!({"email": "not-an-address"})),
    );
    run.call(
        "unknown contact",
        "GET",
        "/contacts/0193a5a0-0000-7000-8000-000000000000",
        None,
    );

    // Templates.
    let template = run.call(
        "create template",
        "POST",
        "/templates",
        Some(json!({"name": "Welcome", "subject": "Hi {{ name | default: 'there' }}", "body": "<p>Plan {{ plan }}</p>", "from": "hi@acme.io", "type": "TRANSACTIONAL"})),
    );
    let template_id = id(&template);
    run.call(
        "read template",
        "GET",
        &format!("/templates/{template_id}"),
        None,
    );
    run.call(
        "patch template",
        "PATCH",
        &format!("/templates/{template_id}"),
        Some(json!({"name": "Welcome v2"})),
    );
    run.call(
        "preview",
        "POST",
        "/templates/preview",
        Some(json!({"subject": "Hi {{ name }}", "body": "<p>{{ plan }}</p>", "data": {"name": "Ada", "plan": "pro"}})),
    );
    let copy = run.call(
        "duplicate template",
        "POST",
        &format!("/templates/{template_id}/duplicate"),
        None,
    );
    let copy_id = id(&copy);
    run.call("list templates", "GET", "/templates", None);
    run.call(
        "bad template",
        "POST",
        "/templates",
        Some(json!({"name": "x", "subject": "{% if %}", "body": "b"})),
    );

    // Tracking with the public key, as a browser does.
    run.call_with(
        "track ada",
        "POST",
        "/v1/track",
        Some(&public),
        Some(json!({"event": "signed-up", "email": "ada@example.org", "data": {"source": "web"}})),
    );
    run.call_with(
        "track carol (new)",
        "POST",
        "/v1/track",
        Some(&public),
        Some(json!({"event": "signed-up", "email": "carol@example.org"})),
    );
    run.call_with(
        "bad track",
        "POST",
        "/v1/track",
        Some(&public),
        Some(json!({"event": ""})),
    );

    // Sending.
    let sent = run.call(
        "send with template",
        "POST",
        "/v1/send",
        Some(json!({"to": "ada@example.org", "template": template_id, "from": "hi@acme.io", "data": {"name": "Ada"}})),
    );
    let email_id = sent["data"]["emails"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    run.call(
        "send inline",
        "POST",
        "/v1/send",
        Some(json!({"to": ["dan@example.org"], "subject": "Hello", "body": "<p>Hello</p>", "from": "hi@acme.io"})),
    );
    run.call(
        "send unverified domain",
        "POST",
        "/v1/send",
        Some(json!({"to": "x@example.org", "subject": "s", "body": "b", "from": "a@other.io"})),
    );
    run.settle("email delivered", &format!("/emails/{email_id}"), |v| {
        v["data"]["status"] == "DELIVERED"
    });
    run.settle("list emails", "/emails", |v| {
        v["data"]["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|e| e["status"] == "DELIVERED"))
    });
    run.call(
        "template usage",
        "GET",
        &format!("/templates/{template_id}/usage"),
        None,
    );

    // Events: the change feed has to have dispatched them all.
    // Counts and last-seen times are separate items the dispatcher writes one after the other:
    // settled when both are there for every name.
    let names = run.settle("event names", "/events/names", |v| {
        count_of(v, "signed-up") == 2
            && count_of(v, "email.delivery") == 2
            && v["data"]["names"]
                .as_array()
                .is_some_and(|names| names.iter().all(|n| n["lastSeenAt"].is_string()))
    });
    assert_eq!(
        count_of(&names, "signed-up"),
        2,
        "dispatch never counted the events: {names}"
    );
    run.call("event stats", "GET", "/events/stats", None);
    let events = run.call(
        "events of ada",
        "GET",
        &format!("/events?contactId={ada_id}"),
        None,
    );
    let event_id = events["data"]["items"][0]["id"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    run.call(
        "contact events",
        "GET",
        &format!("/contacts/{ada_id}/events"),
        None,
    );
    run.call("event by id", "GET", &format!("/events/{event_id}"), None);
    run.call("event usage", "GET", "/events/signed-up/usage", None);

    // Suppressions.
    let suppression = run.call(
        "suppress",
        "POST",
        "/suppressions",
        Some(json!({"email": "eve@example.org", "reason": "MANUAL"})),
    );
    run.call("list suppressions", "GET", "/suppressions", None);
    run.call(
        "send to suppressed",
        "POST",
        "/v1/send",
        Some(json!({"to": "eve@example.org", "subject": "s", "body": "b", "from": "hi@acme.io"})),
    );
    if let Some(suppression_id) = suppression["data"]["id"].as_str() {
        run.call(
            "unsuppress",
            "DELETE",
            &format!("/suppressions/{suppression_id}"),
            None,
        );
    }

    // Webhook deliveries: everything so far reached the receiver.
    let mut received: Vec<String> = Vec::new();
    let deadline = Instant::now() + SETTLE;
    // Two tracked, two sent, two delivered, one suppressed.
    while received.len() < 7 && Instant::now() < deadline {
        if let Ok(payload) = hooks.recv_timeout(Duration::from_millis(500)) {
            received.push(payload["type"].as_str().unwrap_or("?").to_owned());
        }
    }
    received.sort();
    run.record("webhook payload types", 200, &json!(received));
    let deliveries = run.settle(
        "deliveries",
        &format!("/webhooks/{hook_id}/deliveries?limit=100"),
        |v| {
            v["data"]["items"].as_array().is_some_and(|items| {
                items.len() >= 7 && items.iter().all(|d| d["status"] == "SUCCEEDED")
            })
        },
    );
    let delivery_id = deliveries["data"]["items"][0]["id"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    run.call(
        "read delivery",
        "GET",
        &format!("/webhooks/{hook_id}/deliveries/{delivery_id}"),
        None,
    );
    run.call(
        "retry delivery",
        "POST",
        &format!("/webhooks/{hook_id}/deliveries/{delivery_id}/retry"),
        None,
    );
    run.call(
        "test webhook",
        "POST",
        &format!("/webhooks/{hook_id}/test"),
        None,
    );
    run.call(
        "rotate secret",
        "POST",
        &format!("/webhooks/{hook_id}/rotate-secret"),
        None,
    );
    run.call(
        "disable webhook",
        "PATCH",
        &format!("/webhooks/{hook_id}"),
        Some(json!({"enabled": false})),
    );
    run.call(
        "test disabled webhook",
        "POST",
        &format!("/webhooks/{hook_id}/test"),
        None,
    );

    // Deletions.
    run.call("delete event name", "DELETE", "/events/signed-up", None);
    run.settle("event names after delete", "/events/names", |v| {
        count_of(v, "signed-up") == 0
    });
    run.call("delete bob", "DELETE", &format!("/contacts/{bob_id}"), None);
    run.call("bob is gone", "GET", &format!("/contacts/{bob_id}"), None);
    run.call(
        "domain in use",
        "DELETE",
        &format!("/domains/{domain_id}"),
        None,
    );
    run.call(
        "delete template",
        "DELETE",
        &format!("/templates/{template_id}"),
        None,
    );
    run.call(
        "delete copy",
        "DELETE",
        &format!("/templates/{copy_id}"),
        None,
    );
    run.call(
        "delete domain",
        "DELETE",
        &format!("/domains/{domain_id}"),
        None,
    );
    run.call(
        "delete webhook",
        "DELETE",
        &format!("/webhooks/{hook_id}"),
        None,
    );
}

/// A loopback receiver answering 200; sends each JSON payload it gets to the channel.
fn receiver() -> (String, mpsc::Receiver<Value>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let payload = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break Value::Null;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + length {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                break serde_json::from_slice(&buf[end + 4..]).unwrap_or(Value::Null);
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(payload).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// Starts a server with `envs`, runs the script, returns its transcript.
fn transcript(envs: &[(&str, &str)], create_table: bool, log_dir: &std::path::Path) -> Vec<Step> {
    let global: &[&str] = if create_table {
        &["--create-table"]
    } else {
        &[]
    };
    let server = Server::start_serving(envs, global, &["--allow-private-webhooks"], log_dir);
    let secret = server
        .printed_secret()
        .expect("first start prints the secret key");
    let public = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("public key: ").map(str::to_owned))
        .expect("first start prints the public key");
    let (hook_url, hooks) = receiver();
    let mut run = Run {
        server: &server,
        secret,
        public,
        masker: Masker::default(),
        steps: Vec::new(),
    };
    script(&mut run, &hook_url, &hooks);
    run.steps
}

fn render(step: &Step) -> String {
    format!(
        "{} -> {}\n{}",
        step.label,
        step.status,
        serde_json::to_string_pretty(&step.body).unwrap()
    )
}

#[test]
fn sqlite_and_dynamodb_answer_the_same_script_the_same() {
    let Ok(endpoint) = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_data = dir.path().join("sqlite");
    let dynamo_data = dir.path().join("dynamo");
    let table = format!("modes-{}", uuid::Uuid::now_v7());
    let sqlite_envs = [
        ("PLUNK_DATA_DIR", sqlite_data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "100"),
    ];
    let dynamo_envs = [
        ("PLUNK_DATA_DIR", dynamo_data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "100"),
        ("PLUNK_STORE", "dynamo"),
        ("PLUNK_TABLE", table.as_str()),
        ("PLUNK_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let log_dir = dir.path().to_owned();
    let (sqlite, dynamo) = std::thread::scope(|s| {
        let sqlite = s.spawn(|| transcript(&sqlite_envs, false, &log_dir));
        let dynamo = s.spawn(|| transcript(&dynamo_envs, true, &log_dir));
        (sqlite.join().unwrap(), dynamo.join().unwrap())
    });
    if std::env::var_os("PLUNK_PRINT_TRANSCRIPT").is_some() {
        for step in &sqlite {
            eprintln!("{}", render(step));
        }
    }
    assert_eq!(
        sqlite.len(),
        dynamo.len(),
        "the scripts took different paths"
    );
    let mut differences = Vec::new();
    for (a, b) in sqlite.iter().zip(&dynamo) {
        let (a, b) = (render(a), render(b));
        if a != b {
            differences.push(format!("--- sqlite\n{a}\n+++ dynamo\n{b}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        sqlite.len(),
        differences.join("\n\n")
    );
    // The script itself did what it says (so two equally broken runs cannot pass).
    let by_label: HashMap<&str, &Step> = sqlite.iter().map(|s| (s.label.as_str(), s)).collect();
    assert_eq!(
        by_label["email delivered"].body["data"]["status"],
        "DELIVERED"
    );
    assert_eq!(by_label["bob is gone"].status, 404);
    assert_eq!(by_label["test disabled webhook"].status, 409);
    assert!(
        by_label["webhook payload types"]
            .body
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "signed-up")),
        "the receiver got the tracked events: {}",
        by_label["webhook payload types"].body
    );
    eprintln!("{} steps answered the same on both stores", sqlite.len());
}
