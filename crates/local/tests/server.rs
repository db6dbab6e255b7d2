//! `plunk serve` as a user runs it: first start, restarts, the CLI beside a running server, and
//! two servers sharing one DynamoDB table.

mod common;

use common::{cli, Server};
use serde_json::{json, Value};

fn body(res: ureq::Response) -> Value {
    res.into_json().unwrap_or(Value::Null)
}

#[test]
fn first_start_creates_a_project_and_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [("PLUNK_DATA_DIR", data.to_str().unwrap())];
    let server = Server::start(&envs, &[], dir.path());
    let secret = server
        .printed_secret()
        .expect("first start prints the secret key");
    assert!(server
        .stdout
        .iter()
        .any(|l| l.trim().starts_with("public key: pk_")));
    let (status, res) = server.request(
        "POST",
        "/contacts",
        Some(&secret),
        Some(json!({"email": "ada@example.org"})),
    );
    assert_eq!(status, 201);
    let id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let log = server.log();
    drop(server);
    assert!(
        !log.contains(&secret),
        "the key used in requests never reaches the log"
    );

    let server = Server::start(&envs, &[], dir.path());
    assert!(
        server.printed_secret().is_none(),
        "keys are printed only once"
    );
    let (status, res) = server.request("GET", &format!("/contacts/{id}"), Some(&secret), None);
    assert_eq!(status, 200);
    assert_eq!(body(res)["data"]["email"], "ada@example.org");
}

#[test]
fn the_cli_manages_projects_while_the_server_runs_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("PLUNK_KEY_CACHE_SECONDS", "0"),
    ];
    let server = Server::start(&envs, &[], dir.path());

    let (code, created) = cli(&data, &["project", "create", "--name", "Second"]);
    assert_eq!(code, 0, "{created}");
    let key = created["secretKey"].as_str().unwrap().to_owned();
    let project_id = created["project"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server.request(
        "POST",
        "/contacts",
        Some(&key),
        Some(json!({"email": "kim@example.org"})),
    );
    assert_eq!(
        status, 201,
        "a key created by the CLI works on the running server"
    );

    assert_eq!(cli(&data, &["project", "disable", &project_id]).0, 0);
    let (status, res) = server.request(
        "POST",
        "/contacts",
        Some(&key),
        Some(json!({"email": "lee@example.org"})),
    );
    assert_eq!(status, 403);
    assert_eq!(body(res)["error"]["code"], "PROJECT_DISABLED");

    let (_, rotated) = cli(&data, &["keys", "rotate", "--project", &project_id]);
    let new_key = rotated["created"][0]["key"].as_str().unwrap().to_owned();
    let (status, _) = server.request("GET", "/contacts", Some(&key), None);
    assert_eq!(status, 401, "the rotated-out key stops working");
    let (status, res) = server.request("GET", "/contacts", Some(&new_key), None);
    assert_eq!(status, 200);
    assert_eq!(body(res)["data"]["total"], 1);
}

/// The 1001st request of a minute is refused although requests alternate between two servers:
/// the counter lives in the shared table. Needs DynamoDB Local (`make test` starts it).
#[test]
fn two_servers_sharing_a_dynamodb_table_enforce_one_limit() {
    let Ok(endpoint) = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = format!("rate-{}", uuid::Uuid::now_v7());
    let envs = [
        ("PLUNK_STORE", "dynamo"),
        ("PLUNK_TABLE", table.as_str()),
        ("PLUNK_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let out = common::plunk()
        .args([
            "--json",
            "--create-table",
            "project",
            "create",
            "--name",
            "Shared",
        ])
        .envs(envs)
        .output()
        .unwrap();
    let (code, created) = common::parse(out);
    assert_eq!(code, 0, "{created}");
    let key = created["secretKey"].as_str().unwrap().to_owned();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = Server::start(
        &[
            envs.as_slice(),
            &[("PLUNK_DATA_DIR", data_a.to_str().unwrap())],
        ]
        .concat(),
        &[],
        dir.path(),
    );
    let b = Server::start(
        &[
            envs.as_slice(),
            &[("PLUNK_DATA_DIR", data_b.to_str().unwrap())],
        ]
        .concat(),
        &[],
        dir.path(),
    );

    // Start early in a minute so the whole burst falls into one window.
    let second = chrono_second();
    if second > 40 {
        std::thread::sleep(std::time::Duration::from_secs(61 - second));
    }
    let servers = [&a, &b];
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let key = key.clone();
                s.spawn(move || {
                    (0..125)
                        .map(|i| {
                            servers[(t + i) % 2]
                                .request("GET", "/contacts?limit=1", Some(&key), None)
                                .0
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 200), "the first 1000 pass");
    let (status, res) = b.request("GET", "/contacts", Some(&key), None);
    assert_eq!(status, 429);
    assert_eq!(res.header("ratelimit-limit"), Some("1000"));
    assert_eq!(res.header("ratelimit-remaining"), Some("0"));
    let reset = res.header("ratelimit-reset").unwrap().to_owned();
    assert_eq!(res.header("retry-after"), Some(reset.as_str()));
    assert_eq!(body(res)["error"]["code"], "RATE_LIMIT_EXCEEDED");
    let (status, _) = a.request("GET", "/contacts", Some(&key), None);
    assert_eq!(status, 429, "the other server refuses too");
}

/// On DynamoDB the server reads the table's stream itself, as the event-dispatch function does
/// when deployed: tracked events reach `/events/names`, and after a restart the server goes on
/// from its checkpoint instead of counting the old events again. Needs DynamoDB Local.
#[test]
fn on_dynamodb_the_server_dispatches_events_from_the_table_stream_once() {
    let Ok(endpoint) = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let table = format!("stream-{}", uuid::Uuid::now_v7());
    let envs = [
        ("PLUNK_STORE", "dynamo"),
        ("PLUNK_TABLE", table.as_str()),
        ("PLUNK_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let track = |server: &Server, key: &str, email: &str| {
        let (status, _) = server.request(
            "POST",
            "/v1/track",
            Some(key),
            Some(json!({"event": "signed-up", "email": email})),
        );
        assert_eq!(status, 200);
    };
    let count_within = |server: &Server, key: &str, expected: i64| -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, res) = server.request("GET", "/events/names", Some(key), None);
            let names = body(res)["data"]["names"].clone();
            let count = names
                .as_array()
                .and_then(|n| n.iter().find(|n| n["name"] == "signed-up"))
                .and_then(|n| n["count"].as_i64())
                .unwrap_or(0);
            if count >= expected || std::time::Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };

    let server = Server::start(&envs, &["--create-table"], dir.path());
    let key = server.printed_secret().unwrap();
    for i in 0..3 {
        track(&server, &key, &format!("user{i}@example.org"));
    }
    assert_eq!(count_within(&server, &key, 3), 3, "{}", server.log());
    // Stopped as Ctrl-C stops it: the batch it was dispatching is finished and its checkpoint
    // stored. (A server killed between counting a batch and storing its checkpoint counts that
    // batch again on the next start: the feed is at least once.)
    assert!(server.stop(), "the server did not stop on SIGTERM");

    let server = Server::start(&envs, &[], dir.path());
    track(&server, &key, "late@example.org");
    assert_eq!(count_within(&server, &key, 4), 4);
    // Nothing is read again later either.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        count_within(&server, &key, 4),
        4,
        "the restart counted old events again"
    );
}

/// Two servers sharing a table take turns reading its stream: events tracked through either are
/// counted once (not once per server), and when the reader dies the other takes over from its
/// checkpoints. Needs DynamoDB Local.
#[test]
fn servers_sharing_a_table_dispatch_each_event_once_and_take_over() {
    let Ok(endpoint) = std::env::var("PLUNK_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("skipped: PLUNK_TEST_DYNAMODB_ENDPOINT not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = format!("turns-{}", uuid::Uuid::now_v7());
    let data = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (data_a, data_b) = (data("a"), data("b"));
    let envs = |data_dir: &str| {
        vec![
            ("PLUNK_STORE", "dynamo".to_owned()),
            ("PLUNK_TABLE", table.clone()),
            ("PLUNK_DYNAMODB_ENDPOINT", endpoint.clone()),
            ("PLUNK_DATA_DIR", data_dir.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
    };
    let start = |data_dir: &str, create: bool| {
        let owned = envs(data_dir);
        let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let global: &[&str] = if create { &["--create-table"] } else { &[] };
        Server::start(&pairs, global, dir.path())
    };
    let track = |server: &Server, key: &str, email: &str| {
        let (status, _) = server.request(
            "POST",
            "/v1/track",
            Some(key),
            Some(json!({"event": "signed-up", "email": email})),
        );
        assert_eq!(status, 200);
    };
    let count = |server: &Server, key: &str| -> i64 {
        let (_, res) = server.request("GET", "/events/names", Some(key), None);
        body(res)["data"]["names"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["name"] == "signed-up"))
            .and_then(|n| n["count"].as_i64())
            .unwrap_or(0)
    };
    let wait_for = |server: &Server, key: &str, expected: i64, within: u64| -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within);
        loop {
            let seen = count(server, key);
            if seen >= expected || std::time::Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };

    let a = start(&data_a, true);
    let key = a.printed_secret().unwrap();
    let b = start(&data_b, false);
    for i in 0..3 {
        track(&a, &key, &format!("a{i}@example.org"));
        track(&b, &key, &format!("b{i}@example.org"));
    }
    assert_eq!(wait_for(&a, &key, 6, 20), 6, "{}", a.log());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(count(&b, &key), 6, "an event was counted by both servers");

    // The reader dies (whichever it is); the survivor takes over within the lease.
    let a_reads = a.log().contains("this server reads the table's stream");
    let survivor = if a_reads {
        drop(a);
        b
    } else {
        drop(b);
        a
    };
    track(&survivor, &key, "late@example.org");
    assert_eq!(wait_for(&survivor, &key, 7, 45), 7, "{}", survivor.log());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        count(&survivor, &key),
        7,
        "the takeover counted old events again"
    );
}

fn chrono_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60
}

/// The first check, as a user runs it: `plunk serve`, create and verify a domain, send
/// inline HTML, a template with one-shot data and attachments to three recipients; each message
/// arrives in the outbox rendered, and `GET /emails/:id` shows `SENT`.
#[test]
fn a_send_reaches_the_outbox_and_the_email_shows_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "100"),
    ];
    let server = Server::start(&envs, &[], dir.path());
    let key = server.printed_secret().unwrap();

    let (status, res) = server.request(
        "POST",
        "/domains",
        Some(&key),
        Some(json!({"domain": "acme.io"})),
    );
    assert_eq!(status, 201);
    let domain_id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server.request(
        "POST",
        &format!("/domains/{domain_id}/verify"),
        Some(&key),
        None,
    );
    assert_eq!(status, 200);

    let (status, res) = server.request(
        "POST",
        "/templates",
        Some(&key),
        Some(json!({"name": "Receipt", "subject": "Receipt for {{ name ?? \"you\" }}", "type": "TRANSACTIONAL",
            "body": "<h1>Hi {{ name ?? 'there' }}</h1><p>Code {{ code }}</p><img src=\"cid:logo\">",
            "from": "billing@acme.io", "fromName": "Acme Billing"})),
    );
    assert_eq!(status, 201, "{}", body(res));
    let template_id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    // Hand-made in the test to keep it readable: "hello" and a 1x1 PNG header.
    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(&key),
        Some(json!({
            "to": [{"name": "Ada", "email": "ada@example.org"}, "bob@example.net", "cy@example.com"],
            "template": template_id,
            "data": {"code": {"value": "123456", "persistent": false}},
            "attachments": [
                {"filename": "hello.txt", "content": "aGVsbG8=", "contentType": "text/plain"},
                {"filename": "logo.png", "content": "iVBORw0KGgo=", "contentType": "image/png", "disposition": "inline", "contentId": "logo"}
            ]
        })),
    );
    assert_eq!(status, 200);
    let sent = body(res);
    let ids: Vec<String> = sent["data"]["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);

    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(&key),
        Some(json!({"to": "dee@example.org", "subject": "Inline", "body": "<p>Plain {{ email }}</p>", "from": "hi@acme.io"})),
    );
    assert_eq!(status, 200);
    let inline_id = body(res)["data"]["emails"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();

    // A body over the inline limit (8 KB) is kept in blob storage and still sent whole.
    let padding = "<p>lorem ipsum dolor sit amet</p>".repeat(600);
    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(&key),
        Some(json!({"to": "eve@example.org", "subject": "Large", "body": format!("<p>Start {{{{ email }}}}</p>{padding}<p>The end</p>"), "from": "hi@acme.io"})),
    );
    assert_eq!(status, 200);
    let large_id = body(res)["data"]["emails"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for id in ids.iter().chain([&inline_id, &large_id]) {
        loop {
            let (_, res) = server.request("GET", &format!("/emails/{id}"), Some(&key), None);
            let email = body(res);
            // The outbox then reports Delivery a moment later.
            if email["data"]["status"] == "SENT" || email["data"]["status"] == "DELIVERED" {
                assert!(email["data"]["messageId"].is_string());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "email {id} not sent: {email}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let outbox = data.join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 5);
    let ada = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains("ada@example.org"))
        .unwrap();
    assert!(
        ada.contains("Subject: Receipt for Ada"),
        "rendered subject with the recipient name"
    );
    assert!(ada.contains("hello.txt") && ada.contains("Content-ID: <logo>"));
    assert!(ada.contains("multipart/mixed") && ada.contains("multipart/related"));
    let (status, res) = server.request("GET", "/_local/outbox", None, None);
    assert_eq!(status, 200);
    let page = res.into_string().unwrap();
    assert!(page.contains("Receipt for Ada") && page.contains("Inline"));
    let (status, res) = server.request(
        "GET",
        &format!("/_local/outbox/{}/html", ids[0]),
        None,
        None,
    );
    assert_eq!(status, 200);
    let html = res.into_string().unwrap();
    assert!(
        html.contains("<h1>Hi Ada</h1>") && html.contains("Code 123456"),
        "{html}"
    );
    let (status, res) = server.request(
        "GET",
        &format!("/_local/outbox/{large_id}/html"),
        None,
        None,
    );
    assert_eq!(status, 200);
    let html = res.into_string().unwrap();
    assert!(
        html.contains("<p>Start eve@example.org</p>")
            && html.contains(&padding)
            && html.contains("<p>The end</p>"),
        "the large body is rendered whole ({} bytes)",
        html.len()
    );
}

/// One HTTP request as a minimal receiver saw it.
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// A receiver on a loopback port answering 200 to every request, recording them.
fn receiver() -> (String, std::sync::mpsc::Receiver<Seen>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < end + 4 + length {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                break (head, buf[end + 4..].to_vec());
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(Seen { head, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Registers a webhook for `events` at `url`; returns its secret.
fn webhook(server: &Server, key: &str, url: &str, events: &[&str]) -> String {
    let (status, res) = server.request(
        "POST",
        "/webhooks",
        Some(key),
        Some(json!({"url": url, "events": events})),
    );
    assert_eq!(status, 201);
    body(res)["data"]["secret"].as_str().unwrap().to_owned()
}

/// Asserts that `got` carries a Standard Webhooks signature by `secret` that verifies now.
fn assert_signed(got: &Seen, secret: &str) {
    plunk_webhooks::signature::verify(
        header(&got.head, "webhook-id").unwrap(),
        header(&got.head, "webhook-timestamp").unwrap(),
        &got.body,
        header(&got.head, "webhook-signature").unwrap(),
        &[plunk_webhooks::WebhookSecret::parse(secret).unwrap()],
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        plunk_webhooks::signature::DEFAULT_TOLERANCE,
    )
    .expect("the signature verifies");
}

#[test]
fn a_tracked_event_reaches_a_local_webhook_receiver_signed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [("PLUNK_DATA_DIR", data.to_str().unwrap())];
    let server = Server::start_serving(&envs, &[], &["--allow-private-webhooks"], dir.path());
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l.contains("--allow-private-webhooks")),
        "the flag is announced: {:?}",
        server.stdout
    );
    let key = server.printed_secret().unwrap();
    let (url, seen) = receiver();
    let secret = webhook(&server, &key, &url, &["signed_up"]);

    let (status, res) = server.request(
        "POST",
        "/v1/track",
        Some(&key),
        Some(json!({"event": "signed_up", "email": "kim@example.com", "data": {"plan": "free"}})),
    );
    assert_eq!(status, 200);
    let event_id = body(res)["data"]["event"].as_str().unwrap().to_owned();

    let got = seen
        .recv_timeout(std::time::Duration::from_secs(15))
        .expect("the receiver is called within 15 s");
    assert_eq!(header(&got.head, "webhook-id"), Some(event_id.as_str()));
    assert_signed(&got, &secret);
    let payload: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(payload["type"], json!("signed_up"));
    assert_eq!(payload["data"]["data"], json!({"plan": "free"}));

    // The counters follow within seconds.
    let mut count = Value::Null;
    for _ in 0..50 {
        let (_, res) = server.request("GET", "/events/names", Some(&key), None);
        count = body(res)["data"]["names"][0]["count"].clone();
        if count == json!(1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(count, json!(1));
}

#[test]
fn without_the_flag_loopback_webhooks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [("PLUNK_DATA_DIR", data.to_str().unwrap())];
    let server = Server::start(&envs, &[], dir.path());
    let key = server.printed_secret().unwrap();
    let (status, res) = server.request(
        "POST",
        "/webhooks",
        Some(&key),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    );
    assert_eq!(status, 422);
    assert_eq!(
        body(res)["error"]["errors"][0]["code"],
        json!("forbidden_address")
    );
}

/// Polls `GET /emails/:id` until the email has `status` (at most 20 s); returns the email.
fn wait_for_status(server: &Server, key: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, res) = server.request("GET", &format!("/emails/{id}"), Some(key), None);
        let email = body(res)["data"].clone();
        if email["status"] == status {
            return email;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "email {id} never {status}: {email}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Delivery feedback locally, as the check runs it: the outbox reports Send and Delivery
/// through the feedback queue, and `plunk simulate bounce` (another process) makes the running
/// server bounce the email, suppress the address and unsubscribe the contact; the next send to it
/// is `SUPPRESSED`, and a webhook receiver gets `email.bounce` with a signature that verifies.
#[test]
fn sent_mail_is_delivered_by_local_feedback_and_plunk_simulate_bounces_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "100"),
    ];
    let server = Server::start_serving(&envs, &[], &["--allow-private-webhooks"], dir.path());
    let key = server.printed_secret().unwrap();
    let (hook_url, hook_requests) = receiver();
    let secret = webhook(&server, &key, &hook_url, &["email.bounce"]);
    let (_, res) = server.request(
        "POST",
        "/domains",
        Some(&key),
        Some(json!({"domain": "acme.io"})),
    );
    let domain_id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    server.request(
        "POST",
        &format!("/domains/{domain_id}/verify"),
        Some(&key),
        None,
    );
    let (status, res) = server.request(
        "POST",
        "/contacts",
        Some(&key),
        Some(json!({"email": "ada@example.org", "subscribed": true})),
    );
    assert_eq!(status, 201);
    let contact_id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(&key),
        Some(json!({"to": "ada@example.org", "subject": "Hi", "body": "<p>Hi</p>", "from": "hi@acme.io"})),
    );
    assert_eq!(status, 200);
    let id = body(res)["data"]["emails"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();

    let delivered = wait_for_status(&server, &key, &id, "DELIVERED");
    assert!(delivered["sentAt"].is_string() && delivered["deliveredAt"].is_string());

    let (code, out) = cli(&data, &["simulate", "bounce", &id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["event"], "Bounce");
    assert_eq!(out["queued"], true);
    let bounced = wait_for_status(&server, &key, &id, "BOUNCED");
    assert_eq!(bounced["bounceType"], "Permanent");
    let (_, res) = server.request(
        "GET",
        "/suppressions?email=ada@example.org",
        Some(&key),
        None,
    );
    let suppression = body(res)["data"]["items"][0].clone();
    assert_eq!(suppression["reason"], "HARD_BOUNCE");
    assert_eq!(suppression["emailId"], id.as_str());
    let (_, res) = server.request("GET", &format!("/contacts/{contact_id}"), Some(&key), None);
    assert_eq!(body(res)["data"]["subscribed"], false);

    // The next send to the address is recorded SUPPRESSED and never sent.
    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(&key),
        Some(json!({"to": "ada@example.org", "subject": "Again", "body": "<p>Hi</p>", "from": "hi@acme.io"})),
    );
    assert_eq!(status, 200);
    assert_eq!(body(res)["data"]["emails"][0]["status"], "SUPPRESSED");

    // The webhook receiver got email.bounce (only: its filter), signed.
    let got = hook_requests
        .recv_timeout(std::time::Duration::from_secs(15))
        .expect("email.bounce reaches the receiver within 15 s");
    let payload: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(payload["type"], "email.bounce");
    assert_eq!(payload["data"]["emailId"], id.as_str());
    assert_eq!(payload["data"]["contact"]["email"], "ada@example.org");
    assert_eq!(payload["data"]["data"]["bounceType"], "Permanent");
    assert_signed(&got, &secret);

    let unknown = uuid::Uuid::now_v7().to_string();
    let (code, out) = cli(&data, &["simulate", "open", &unknown]);
    assert_eq!(code, 2, "an unknown email is not found: {out}");
    assert_eq!(out["error"]["kind"], "not_found");
}

/// admin-cli.md's emergency stop, as a user would try it: 1,000 emails queued at 14 a second,
/// then `plunk project disable`. Whatever the 60 s settings cache, no email reaches the outbox
/// more than 5 seconds after the command returned, and the rest end `FAILED` with
/// `PROJECT_DISABLED`.
#[test]
fn disabling_a_project_stops_its_queued_mail_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "14"),
        ("PLUNK_KEY_CACHE_SECONDS", "60"),
    ];
    let server = Server::start(&envs, &[], dir.path());
    let key = server.printed_secret().unwrap();
    let (_, res) = server.request(
        "POST",
        "/domains",
        Some(&key),
        Some(json!({"domain": "acme.io"})),
    );
    let domain_id = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let verify = format!("/domains/{domain_id}/verify");
    assert_eq!(server.request("POST", &verify, Some(&key), None).0, 200);
    for batch in 0..20 {
        let to: Vec<String> = (0..50)
            .map(|i| format!("r{batch}-{i}@example.org"))
            .collect();
        let (status, res) = server.request(
            "POST",
            "/v1/send",
            Some(&key),
            Some(json!({"to": to, "subject": "Hi", "body": "<p>Hi</p>", "from": "hi@acme.io"})),
        );
        assert_eq!(status, 200, "{}", body(res));
    }
    let outbox = data.join("outbox");
    let sent = || {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .count()
            })
            .unwrap_or(0)
    };
    // Let sending get going, so the settings are cached and mail is paced ahead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sent() < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, res) = server.request("GET", "/emails?limit=1", Some(&key), None);
    assert_eq!(body(res)["success"], true);
    let project = server.stdout.iter().find_map(|l| {
        l.strip_prefix("Created project Local (")
            .map(|rest| rest.trim_end_matches(')').to_owned())
    });
    let project = project.expect("the first start names its project");

    let (code, out) = cli(&data, &["project", "disable", &project]);
    assert_eq!(code, 0, "{out}");
    let at_return = sent();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let after_five = sent();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let later = sent();
    assert_eq!(
        later, after_five,
        "mail still reached the outbox more than 5 s after the command returned"
    );
    assert!(
        after_five - at_return <= 5 * 14,
        "at most 5 seconds' worth after the command: {at_return} then {after_five}"
    );
    assert!(
        later < 1000,
        "the queue was stopped, not drained ({later} sent)"
    );
    eprintln!(
        "disable: {at_return} sent when the command returned, {} more after it, none after 5 s; {} of 1000 never sent",
        after_five - at_return,
        1000 - later
    );
}
