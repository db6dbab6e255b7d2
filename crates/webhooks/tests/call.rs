//! The generic outgoing call ([`plunk_webhooks::call`]) against a real server on 127.0.0.1:
//! methods, headers, bodies, redirects, timeouts and refusals.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as SeenMethod, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use plunk_webhooks::{call, AttemptPolicy, HttpCall, Method, RequestBody};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: SeenMethod,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// Records every request, then answers by path: `/redirect` 302 to `/echo`, `/slow` after
/// 10 s, `/long` 200 with 100 bytes, `/accented` 200 with `a` and 50 `é`, anything else 200
/// `ok`.
async fn server() -> (SocketAddr, Log) {
    let log = Log::default();
    let app = Router::new()
        .fallback(any(
            |State(log): State<Log>,
             method: SeenMethod,
             uri: Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                let path = uri.path().to_owned();
                log.0.lock().unwrap().push(Seen {
                    method,
                    path: path.clone(),
                    headers,
                    body,
                });
                match path.as_str() {
                    "/redirect" => {
                        (StatusCode::FOUND, [("location", "/echo")], "moved").into_response()
                    }
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        "late".into_response()
                    }
                    "/long" => "x".repeat(100).into_response(),
                    "/accented" => format!("a{}", "é".repeat(50)).into_response(),
                    _ => "ok".into_response(),
                }
            },
        ))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, log)
}

fn local() -> AttemptPolicy {
    AttemptPolicy {
        allow_private: true,
        ..AttemptPolicy::default()
    }
}

fn get(addr: SocketAddr, path: &str) -> HttpCall {
    HttpCall {
        method: Method::GET,
        url: format!("http://{addr}{path}?token=s3cr3t-query"),
        headers: vec![],
        body: None,
        response_body_limit: 4096,
    }
}

#[tokio::test]
async fn every_method_arrives_with_its_headers_and_only_bodied_methods_send_a_body() {
    let (addr, log) = server().await;
    let methods = [
        (Method::GET, false),
        (Method::POST, true),
        (Method::PUT, true),
        (Method::PATCH, true),
        (Method::DELETE, false),
    ];
    for (method, with_body) in &methods {
        let request = HttpCall {
            method: method.clone(),
            headers: vec![
                ("X-Custom".into(), format!("v-{method}")),
                ("Authorization".into(), "Bearer t0ken".into()),
            ],
            body: with_body.then(|| RequestBody::json(format!(r#"{{"m":"{method}"}}"#).into())),
            ..get(addr, "/echo")
        };
        let out = call(&request, &local()).await;
        assert!(out.success, "{method}: {out:?}");
        assert_eq!(out.status, Some(200));
        assert_eq!(out.body.as_deref(), Some("ok"));
    }
    let seen = log.all();
    assert_eq!(seen.len(), methods.len());
    for ((method, with_body), seen) in methods.iter().zip(&seen) {
        assert_eq!(seen.method.as_str(), method.as_str());
        assert_eq!(seen.path, "/echo");
        assert_eq!(
            seen.header("x-custom"),
            Some(format!("v-{method}").as_str())
        );
        assert_eq!(seen.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(seen.header("user-agent"), Some("plunk-webhooks/1"));
        if *with_body {
            assert_eq!(
                seen.body.as_ref(),
                format!(r#"{{"m":"{method}"}}"#).as_bytes()
            );
            assert_eq!(seen.header("content-type"), Some("application/json"));
        } else {
            assert!(seen.body.is_empty(), "{method}");
            for framing in ["content-type", "content-length", "transfer-encoding"] {
                assert_eq!(seen.header(framing), None, "{method} {framing}");
            }
        }
    }
}

#[tokio::test]
async fn custom_headers_cannot_replace_user_agent_content_type_or_host() {
    let (addr, log) = server().await;
    let request = HttpCall {
        method: Method::POST,
        headers: vec![
            ("User-Agent".into(), "spoofed/9".into()),
            ("Content-Type".into(), "text/plain".into()),
            ("Host".into(), "internal.example".into()),
            ("Content-Length".into(), "999".into()),
        ],
        body: Some(RequestBody::json(b"[1,2]".to_vec())),
        ..get(addr, "/echo")
    };
    let out = call(&request, &local()).await;
    assert!(out.success, "{out:?}");
    let seen = &log.all()[0];
    assert_eq!(seen.header("user-agent"), Some("plunk-webhooks/1"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("host"), Some(addr.to_string().as_str()));
    assert_eq!(seen.header("content-length"), Some("5"));
    assert_eq!(seen.body.as_ref(), b"[1,2]");
}

#[tokio::test]
async fn a_302_is_a_failure_with_its_status_and_the_location_is_not_visited() {
    let (addr, log) = server().await;
    let out = call(&get(addr, "/redirect"), &local()).await;
    assert!(!out.success);
    assert_eq!(out.status, Some(302));
    assert_eq!(out.body.as_deref(), Some("moved"));
    assert_eq!(out.error, None);
    let paths: Vec<String> = log.all().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/redirect"]);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let (addr, log) = server().await;
    let policy = AttemptPolicy {
        timeout: Duration::from_millis(200),
        allow_private: true,
    };
    let out = call(&get(addr, "/slow"), &policy).await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    assert_eq!(out.error.as_deref(), Some("timeout"));
    assert!(!out.refused(), "a timeout is worth another try");
    assert!(out.duration_ms < 5_000, "{out:?}");
    assert_eq!(log.all().len(), 1, "the request did reach the server");
}

#[tokio::test]
async fn the_kept_response_body_follows_the_calls_limit() {
    let (addr, _) = server().await;
    let out = call(
        &HttpCall {
            response_body_limit: 10,
            ..get(addr, "/long")
        },
        &local(),
    )
    .await;
    assert_eq!(out.body.as_deref(), Some("x".repeat(10).as_str()));
    // 4 bytes end inside the second 'é' (two bytes each): it is dropped, not replaced.
    let out = call(
        &HttpCall {
            response_body_limit: 4,
            ..get(addr, "/accented")
        },
        &local(),
    )
    .await;
    assert_eq!(out.body.as_deref(), Some("aé"));
}

#[tokio::test]
async fn a_forbidden_address_is_refused_without_allow_private() {
    let (addr, log) = server().await;
    let out = call(&get(addr, "/echo"), &AttemptPolicy::default()).await;
    assert!(!out.success);
    assert_eq!(out.status, None);
    assert_eq!(out.error.as_deref(), Some("forbidden_address"));
    assert!(out.refused());
    assert!(log.all().is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn a_header_value_with_a_line_break_is_refused_before_sending() {
    let (addr, log) = server().await;
    for value in ["Bearer s3cret\r\nX-Injected: 1", "s3cret\nline", "s3cret\r"] {
        let request = HttpCall {
            headers: vec![("Authorization".into(), value.into())],
            ..get(addr, "/echo")
        };
        let out = call(&request, &local()).await;
        assert!(!out.success);
        assert_eq!(out.status, None);
        let error = out.error.clone().unwrap();
        assert_eq!(
            error,
            "invalid_header: the value of authorization contains CR or LF"
        );
        assert!(!error.contains("s3cret") && !error.contains("s3cr3t-query"));
        assert!(out.refused());
    }
    assert!(log.all().is_empty(), "nothing reached the server");
}
