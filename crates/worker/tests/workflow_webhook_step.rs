//! A workflow `WEBHOOK` step against a real endpoint on 127.0.0.1: the output kept, retries of
//! a 503, an immediate failure on a 404, and one idempotency key across attempts.

use plunk_domain::contact::Contact;
use plunk_domain::workflow::{WebhookConfig, WebhookMethod};
use plunk_domain::{EmailAddress, Timestamp};
use plunk_worker::workflows::webhook_step::{run, WebhookStepInput, WebhookStepResult};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// One request as the endpoint read it: method, path, headers (names lower-cased) and body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An endpoint answering by path: `/ok` 200 with `a` then 3,000 `é` (6,001 bytes), `/busy`
/// 503, anything else 404. One request per connection.
async fn endpoint() -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Log::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else {
                    return;
                };
                let route = request.path.split('?').next().unwrap_or_default();
                let (status, body) = match route {
                    "/ok" => ("200 OK", format!("a{}", "é".repeat(3_000))),
                    "/busy" => ("503 Service Unavailable", "try later".to_owned()),
                    _ => ("404 Not Found", "no such hook".to_owned()),
                };
                seen.lock().unwrap().push(request);
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    (addr, log)
}

/// Reads one HTTP/1.1 request with a `content-length` body (or none).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?, request_line.next()?);
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |l| l.parse().ok())?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body,
    })
}

/// The owned values a step input borrows.
struct Step {
    config: WebhookConfig,
    contact: Contact,
    context: Map<String, Value>,
}

impl Step {
    fn new(addr: SocketAddr, path: &str) -> Self {
        let now = Timestamp::now();
        Step {
            config: WebhookConfig {
                url: format!("http://{addr}{path}?who={{{{ data.first }}}}"),
                method: WebhookMethod::Post,
                headers: vec![("X-Order".into(), "{{ event.order }}".into())],
                body: None,
            },
            contact: Contact {
                id: Uuid::now_v7(),
                email: EmailAddress::parse("ada@example.com").unwrap(),
                subscribed: true,
                data: json!({"first": "Ada"}).as_object().unwrap().clone(),
                created_at: now,
                updated_at: now,
            },
            context: json!({"order": "A-17"}).as_object().unwrap().clone(),
        }
    }

    fn input<'a>(&'a self, key: &'a str) -> WebhookStepInput<'a> {
        WebhookStepInput {
            config: &self.config,
            contact: &self.contact,
            context: &self.context,
            project_language: "en",
            workflow_id: Uuid::now_v7(),
            workflow_name: "Onboarding",
            execution_id: Uuid::now_v7(),
            idempotency_key: key,
            now: Timestamp::now(),
        }
    }
}

#[tokio::test]
async fn a_2xx_succeeds_with_the_response_body_cut_to_4_kb() {
    let (addr, log) = endpoint().await;
    let step = Step::new(addr, "/ok");

    let result = run(&step.input("key-1"), 0, true).await;

    let WebhookStepResult::Succeeded { output } = result else {
        panic!("{result:?}");
    };
    assert_eq!(output["status"], 200);
    assert!(output["durationMs"].as_u64().unwrap() < 10_000);
    // 4,096 bytes end inside a two-byte 'é': 'a' and 2,047 of them are kept.
    assert_eq!(
        output["body"].as_str().unwrap(),
        format!("a{}", "é".repeat(2_047))
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/ok?who=Ada");
    assert_eq!(request.headers["x-order"], "A-17");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["contact"]["email"], "ada@example.com");
    assert_eq!(body["context"], json!({"order": "A-17"}));
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_idempotency_key() {
    let (addr, log) = endpoint().await;
    let step = Step::new(addr, "/busy");
    let key = "0193a1f3-2b00-7d11-8e22-3f4a5b6c7d8e:step-4";

    // Each call is told how many attempts came before it, as the engine counts them.
    let first = run(&step.input(key), 0, true).await;
    let second = run(&step.input(key), 1, true).await;
    let third = run(&step.input(key), 2, true).await;

    let output = |result: &WebhookStepResult| match result {
        WebhookStepResult::RetryAfter { output, .. } | WebhookStepResult::Failed { output, .. } => {
            output.clone()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(first, WebhookStepResult::RetryAfter { delay, .. } if delay == Duration::from_secs(30)),
        "{first:?}"
    );
    assert_eq!(output(&first)["status"], 503);
    assert_eq!(output(&first)["body"], "try later");
    assert!(
        matches!(second, WebhookStepResult::RetryAfter { delay, .. } if delay == Duration::from_secs(120)),
        "{second:?}"
    );
    let WebhookStepResult::Failed { error, .. } = &third else {
        panic!("{third:?}");
    };
    assert_eq!(error, "the endpoint answered 503 (after 3 attempts)");
    assert_eq!(output(&third)["status"], 503);

    let keys: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert_eq!(keys, [key, key, key]);
}

#[tokio::test]
async fn a_404_fails_at_once() {
    let (addr, log) = endpoint().await;
    let step = Step::new(addr, "/missing");

    let result = run(&step.input("key-404"), 0, true).await;

    assert_eq!(
        result,
        WebhookStepResult::Failed {
            output: match &result {
                WebhookStepResult::Failed { output, .. } => {
                    assert_eq!(output["status"], 404);
                    assert_eq!(output["body"], "no such hook");
                    output.clone()
                }
                other => panic!("{other:?}"),
            },
            error: "the endpoint answered 404".into(),
        }
    );
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_private_address_is_refused_unless_allowed() {
    let (addr, log) = endpoint().await;
    let step = Step::new(addr, "/ok");
    let result = run(&step.input("key-private"), 0, false).await;
    // Refused before connecting, and not worth a retry.
    let WebhookStepResult::Failed { output, error } = &result else {
        panic!("{result:?}");
    };
    assert_eq!(error, "forbidden_address");
    assert_eq!(output["status"], Value::Null);
    assert!(log.lock().unwrap().is_empty());
}
