//! Shared by the SES v2 tests: clients for moto (`PLUNK_TEST_AWS_ENDPOINT`) or for a tiny fake
//! SES endpoint that answers canned responses and records requests, and a plain HTTP GET for moto's `/moto-api/data.json`.

#![allow(dead_code)]

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sesv2::Client;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// moto's endpoint, when the environment names one.
pub fn moto_endpoint() -> Option<String> {
    std::env::var("PLUNK_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// The region the tests use (`AWS_REGION`, default `us-east-1`).
pub fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

/// An SES v2 client for `endpoint` with test credentials (from the environment, default
/// `test`/`test`) and no retries.
pub fn client(endpoint: &str) -> Client {
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region()))
        .credentials_provider(Credentials::new(key, secret, None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled());
    Client::from_conf(config.build())
}

/// A canned HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Sent as `x-amzn-ErrorType` (restJson1 errors).
    pub error_type: Option<&'static str>,
    pub body: String,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self {
            status: 200,
            error_type: None,
            body: body.into(),
        }
    }

    pub fn error(status: u16, error_type: &'static str) -> Self {
        Self {
            status,
            error_type: Some(error_type),
            body: format!(r#"{{"message":"fake {error_type}"}}"#),
        }
    }
}

/// One request as the fake endpoint saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
}

type Route = dyn Fn(&str, &str) -> Reply + Send + Sync;

/// A fake SES endpoint: `route(method, path)` picks each answer. Returns its URL and the log of
/// requests.
pub async fn fake_ses(
    route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let route: Arc<Route> = Arc::new(route);
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let route = route.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let _ = serve(socket, route, log).await;
            });
        }
    });
    (url, seen)
}

async fn serve(
    mut socket: TcpStream,
    route: Arc<Route>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    loop {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut first = head.lines().next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        let reply = route(&method, &path);
        log.lock().unwrap().push(Seen { method, path, body });
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        if let Some(t) = reply.error_type {
            out.push_str(&format!("x-amzn-ErrorType: {t}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        socket.write_all(out.as_bytes()).await?;
    }
}

/// `GET <endpoint><path>` over HTTP/1.0; returns the body.
pub async fn http_get(endpoint: &str, path: &str) -> String {
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut socket = TcpStream::connect(&authority).await.expect("connect");
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_string()
}

/// A domain no other test uses.
pub fn unique_domain() -> String {
    format!("t{}.example.com", uuid::Uuid::now_v7().simple())
}
