//! One delivery attempt against a real receiver on 127.0.0.1.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use plunk_webhooks::signature::{verify, DEFAULT_TOLERANCE};
use plunk_webhooks::{attempt, AttemptPolicy, AttemptRequest, WebhookSecret};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the receiver saw: path, headers and body of every request.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

impl Seen {
    fn record(&self, path: &str, headers: HeaderMap, body: Bytes) {
        self.0
            .lock()
            .unwrap()
            .push((path.to_owned(), headers, body));
    }
    fn all(&self) -> Vec<(String, HeaderMap, Bytes)> {
        self.0.lock().unwrap().clone()
    }
}

async fn start_receiver() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/ok",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                s.record("/ok", h, b);
                (StatusCode::OK, "thanks")
            }),
        )
        .route(
            "/fail",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                s.record("/fail", h, b);
                (StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }),
        )
        .route(
            "/gone",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                s.record("/gone", h, b);
                (StatusCode::GONE, "unsubscribed")
            }),
        )
        .route(
            "/redirect",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                s.record("/redirect", h, b);
                (StatusCode::FOUND, [("location", "/ok")], "")
            }),
        )
        .route(
            "/slow",
            post(|State(s): State<Seen>, h: HeaderMap, b: Bytes| async move {
                s.record("/slow", h, b);
                tokio::time::sleep(Duration::from_secs(10)).await;
                (StatusCode::OK, "late")
            }),
        )
        .route("/big", post(|| async { "é".repeat(2000).into_response() }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen)
}

fn request(addr: SocketAddr, path: &str, secrets: Vec<WebhookSecret>) -> AttemptRequest {
    AttemptRequest {
        url: format!("http://{addr}{path}?token=s3cr3t-query"),
        webhook_id: "0193a1f3-2b00-7d11-8e22-3f4a5b6c7d8e".into(),
        body: br#"{"type":"email.sent","data":{"x":1}}"#.to_vec(),
        secrets,
    }
}

fn local() -> AttemptPolicy {
    AttemptPolicy {
        allow_private: true,
        ..AttemptPolicy::default()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_2xx_is_a_success_and_the_request_is_signed_per_standard_webhooks() {
    let (addr, seen) = start_receiver().await;
    let current = WebhookSecret::generate();
    let previous = WebhookSecret::generate();
    let req = request(addr, "/ok", vec![current.clone(), previous.clone()]);

    let out = attempt(&req, &local()).await;

    assert!(out.success, "{out:?}");
    assert_eq!(out.status, Some(200));
    assert_eq!(out.body.as_deref(), Some("thanks"));
    assert_eq!(out.error, None);
    assert!(!out.gone);
    let all = seen.all();
    assert_eq!(all.len(), 1);
    let (_, headers, body) = &all[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("user-agent"), "plunk-webhooks/1");
    assert_eq!(header("webhook-id"), req.webhook_id);
    assert_eq!(header("host"), addr.to_string());
    assert_eq!(body.as_ref(), req.body.as_slice());
    let ts = header("webhook-timestamp");
    assert!((ts.parse::<i64>().unwrap() - now_secs()).abs() <= 60);
    let sig = header("webhook-signature");
    assert_eq!(sig.split(' ').count(), 2, "one signature per secret");
    // Each secret alone verifies the request, as a receiver holding either would check it.
    for secret in [current, previous] {
        verify(
            &req.webhook_id,
            &ts,
            body,
            &sig,
            &[secret],
            now_secs(),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
    }
    // A secret the receiver does not share fails.
    assert!(verify(
        &req.webhook_id,
        &ts,
        body,
        &sig,
        &[WebhookSecret::generate()],
        now_secs(),
        DEFAULT_TOLERANCE,
    )
    .is_err());
}

#[tokio::test]
async fn a_500_is_a_failure_with_its_status_and_body() {
    let (addr, _) = start_receiver().await;
    let out = attempt(
        &request(addr, "/fail", vec![WebhookSecret::generate()]),
        &local(),
    )
    .await;
    assert!(!out.success);
    assert_eq!(out.status, Some(500));
    assert_eq!(out.body.as_deref(), Some("boom"));
    assert_eq!(out.error, None);
    assert!(!out.gone);
}

#[tokio::test]
async fn a_410_marks_the_endpoint_gone() {
    let (addr, _) = start_receiver().await;
    let out = attempt(
        &request(addr, "/gone", vec![WebhookSecret::generate()]),
        &local(),
    )
    .await;
    assert!(!out.success);
    assert_eq!(out.status, Some(410));
    assert!(out.gone);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_failure() {
    let (addr, seen) = start_receiver().await;
    let out = attempt(
        &request(addr, "/redirect", vec![WebhookSecret::generate()]),
        &local(),
    )
    .await;
    assert!(!out.success);
    assert_eq!(out.status, Some(302));
    let paths: Vec<String> = seen.all().into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        paths,
        vec!["/redirect".to_owned()],
        "the Location was not visited"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let (addr, seen) = start_receiver().await;
    let policy = AttemptPolicy {
        timeout: Duration::from_millis(200),
        allow_private: true,
    };
    let out = attempt(
        &request(addr, "/slow", vec![WebhookSecret::generate()]),
        &policy,
    )
    .await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    assert_eq!(out.body, None);
    assert_eq!(out.error.as_deref(), Some("timeout"));
    assert_eq!(seen.all().len(), 1, "the request did reach the endpoint");
}

#[tokio::test]
async fn private_addresses_are_refused_without_connecting() {
    let (addr, seen) = start_receiver().await;
    let out = attempt(
        &request(addr, "/ok", vec![WebhookSecret::generate()]),
        &AttemptPolicy::default(),
    )
    .await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    assert_eq!(out.error.as_deref(), Some("forbidden_address"));
    assert!(seen.all().is_empty(), "nothing reached the receiver");

    let by_name = AttemptRequest {
        url: format!("http://localhost:{}/ok", addr.port()),
        ..request(addr, "/ok", vec![])
    };
    let out = attempt(&by_name, &AttemptPolicy::default()).await;
    assert_eq!(out.error.as_deref(), Some("forbidden_address"));
    assert!(seen.all().is_empty());
}

#[tokio::test]
async fn a_long_response_body_is_cut_to_1_kb() {
    let (addr, _) = start_receiver().await;
    let out = attempt(
        &request(addr, "/big", vec![WebhookSecret::generate()]),
        &local(),
    )
    .await;
    assert!(out.success);
    let body = out.body.unwrap();
    // 'é' is two bytes, so 1 KB holds exactly 512 of them.
    assert_eq!(body, "é".repeat(512));
}

#[tokio::test]
async fn a_refused_connection_is_reported_without_the_url_or_secret() {
    // Bind and drop a listener to get a local port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let secret = WebhookSecret::generate();
    let req = request(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/ok",
        vec![secret.clone()],
    );
    let out = attempt(&req, &local()).await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    let error = out.error.unwrap();
    assert!(error.starts_with("connection_error"), "{error}");
    assert!(!error.contains("s3cr3t-query"), "{error}");
    assert!(!error.contains(secret.expose()), "{error}");
}

#[tokio::test]
async fn https_goes_through_tls_and_fails_cleanly_against_a_plain_http_port() {
    let (addr, _) = start_receiver().await;
    let req = AttemptRequest {
        url: format!("https://{addr}/ok"),
        ..request(addr, "/ok", vec![WebhookSecret::generate()])
    };
    let out = attempt(&req, &local()).await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    // The TLS handshake itself fails: the plain HTTP server answers with no TLS record.
    let error = out.error.unwrap();
    assert!(error.starts_with("connection_error"), "{error}");
}

#[tokio::test]
async fn an_unusable_stored_url_fails_without_a_request() {
    let (addr, seen) = start_receiver().await;
    for url in ["ftp://127.0.0.1/x", "not a url", "http://u:p@127.0.0.1/"] {
        let req = AttemptRequest {
            url: url.into(),
            ..request(addr, "/ok", vec![])
        };
        let out = attempt(&req, &local()).await;
        assert!(
            out.error
                .as_deref()
                .is_some_and(|e| e.starts_with("invalid_url")),
            "{url}: {out:?}"
        );
    }
    assert!(seen.all().is_empty());
}

/// A receiver that answers 200 at once, then sends 3 of the 100 body bytes it announced and
/// holds the connection open.
async fn start_trickling_receiver() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_200_whose_body_does_not_arrive_in_time_is_a_failure() {
    let addr = start_trickling_receiver().await;
    let policy = AttemptPolicy {
        timeout: Duration::from_millis(300),
        allow_private: true,
    };
    let out = attempt(
        &request(addr, "/hook", vec![WebhookSecret::generate()]),
        &policy,
    )
    .await;
    assert!(!out.success, "{out:?}");
    assert_eq!(out.status, None);
    let error = out.error.unwrap();
    assert!(
        error.starts_with("timeout") && error.contains("200"),
        "{error}"
    );
    assert!(
        out.duration_ms < 5_000,
        "ends at the deadline, not when the receiver gives up"
    );
}
