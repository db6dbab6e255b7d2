//! One outgoing HTTP call ([`call`]): vet the address (SSRF), then send the request to exactly
//! that address, without following redirects, within a timeout. A webhook delivery attempt
//! ([`attempt`]) is such a call: a signed JSON POST. Workflow `WEBHOOK` steps make their own.
//!
//! Talks to the customer's endpoint over HTTP/1.1 with reqwest, TLS through rustls with the
//! aws-lc-rs provider and the operating system's root certificates (the stack the AWS SDK uses).

use crate::secret::WebhookSecret;
use crate::signature;
use crate::ssrf::{self, VetError};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    TRANSFER_ENCODING, USER_AGENT,
};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use url::{Host, Url};

/// The HTTP method of a [`HttpCall`] (the `http` crate's, as reqwest re-exports it).
pub use reqwest::Method;

/// The `User-Agent` of every call.
pub const USER_AGENT_VALUE: &str = "plunk-webhooks/1";

/// Response bytes after which reading stops and the response counts as complete (a call keeping
/// more reads what it keeps).
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// Per-attempt timeout: the whole exchange, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of the response body a delivery attempt keeps, in bytes.
pub const RESPONSE_BODY_LIMIT: usize = 1024;

/// Longest error text kept in an outcome.
const ERROR_TEXT_LIMIT: usize = 500;

/// Headers the call sets itself. A caller's value is dropped: it would contradict the connection
/// (`Host`), the framing of the body (`Content-Length`, `Transfer-Encoding`, `Connection`) or who
/// is calling (`User-Agent`).
const CALL_SET_HEADERS: [HeaderName; 5] = [
    HOST,
    USER_AGENT,
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
    CONNECTION,
];

/// The error kinds of a call refused before anything was sent: the same call meets them again.
const REFUSALS: [&str; 4] = [
    "forbidden_address",
    "invalid_url",
    "invalid_header",
    "invalid_request",
];

/// What to send.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    /// The webhook's URL as stored.
    pub url: String,
    /// The `webhook-id` header: the event id, the same on every retry.
    pub webhook_id: String,
    /// The exact body bytes, signed as they are.
    pub body: Vec<u8>,
    /// Active secrets, each adding one signature (two while a rotated secret is still valid).
    pub secrets: Vec<WebhookSecret>,
}

/// A request body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBody {
    /// The bytes sent, exactly.
    pub bytes: Vec<u8>,
    /// The `Content-Type` sent with them; a caller's own `Content-Type` header gives way to it.
    pub content_type: String,
}

impl RequestBody {
    /// A JSON body: `bytes` as they are, with `Content-Type: application/json`.
    pub fn json(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            content_type: "application/json".into(),
        }
    }
}

/// One outgoing HTTP request, made by [`call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The method, sent as it is.
    pub method: Method,
    /// An absolute `http` or `https` URL without user information, checked again by the call.
    pub url: String,
    /// Extra headers, in order (a repeated name is sent repeatedly). `Host`, `User-Agent`,
    /// `Content-Length`, `Transfer-Encoding`, `Connection`, and `Content-Type` when there is a
    /// body, are the call's own: a value given here for them is dropped. A name that is not an
    /// HTTP token, or a value with CR, LF or another control character than tab, fails the call
    /// before anything is sent.
    pub headers: Vec<(String, String)>,
    /// The body; `None` sends none (no `Content-Length` either).
    pub body: Option<RequestBody>,
    /// Response body bytes kept in [`AttemptOutcome::body`].
    pub response_body_limit: usize,
}

/// How to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Whole attempt: DNS, connect, TLS, request and reading the kept part of the body.
    pub timeout: Duration,
    /// Skip the SSRF address rules (local development and tests only).
    pub allow_private: bool,
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            allow_private: false,
        }
    }
}

/// What happened, in the terms of a Delivery record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// A 2xx status was received.
    pub success: bool,
    /// The response status, if a response arrived (3xx included: redirects are not followed).
    pub status: Option<u16>,
    /// The start of the response body as lossy UTF-8, if a response arrived: the call's
    /// [`HttpCall::response_body_limit`] bytes (1 KB for a delivery attempt), a character cut in
    /// two at the end dropped.
    pub body: Option<String>,
    /// Time the attempt took.
    pub duration_ms: u64,
    /// Why no response arrived: `forbidden_address`, `timeout`, `invalid_url: …`,
    /// `invalid_header: …`, `dns_error: …` or a connection error text. Never contains the URL, a
    /// header value or a secret.
    pub error: Option<String>,
    /// The endpoint answered 410 Gone: the webhook must be disabled.
    pub gone: bool,
}

impl AttemptOutcome {
    /// Whether the call was refused before anything was sent — an unusable URL or header, a
    /// forbidden address — so that repeating the same call cannot succeed.
    pub fn refused(&self) -> bool {
        self.status.is_none()
            && self.error.as_deref().is_some_and(|e| {
                let kind = e.split(':').next().unwrap_or(e);
                REFUSALS.contains(&kind)
            })
    }
}

/// Makes one delivery attempt: a POST of the signed body (Standard Webhooks headers), made by
/// [`call`]. Never panics; every failure is described in [`AttemptOutcome::error`].
pub async fn attempt(req: &AttemptRequest, policy: &AttemptPolicy) -> AttemptOutcome {
    call(&signed_call(req), policy).await
}

/// The request of a delivery attempt, signed now.
fn signed_call(req: &AttemptRequest) -> HttpCall {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
    let mut headers = vec![
        ("webhook-id".to_owned(), req.webhook_id.clone()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
    ];
    let signatures = signature::sign(&req.webhook_id, timestamp, &req.body, &req.secrets);
    if !signatures.is_empty() {
        headers.push(("webhook-signature".to_owned(), signatures));
    }
    HttpCall {
        method: Method::POST,
        url: req.url.clone(),
        headers,
        body: Some(RequestBody::json(req.body.clone())),
        response_body_limit: RESPONSE_BODY_LIMIT,
    }
}

/// Makes one call: checks the URL and headers, vets the address (unless
/// [`AttemptPolicy::allow_private`]), connects to exactly that address and sends the request, all
/// within [`AttemptPolicy::timeout`]. A redirect is not followed (its 3xx is the outcome). Never
/// panics and never returns early without an outcome: every failure is described in
/// [`AttemptOutcome::error`].
pub async fn call(call: &HttpCall, policy: &AttemptPolicy) -> AttemptOutcome {
    let started = Instant::now();
    let deadline = started + policy.timeout;
    let result = exchange(call, policy, deadline).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok((status, body)) => AttemptOutcome {
            success: (200..300).contains(&status),
            status: Some(status),
            body: Some(body),
            duration_ms,
            error: None,
            gone: status == 410,
        },
        Err(error) => AttemptOutcome {
            success: false,
            status: None,
            body: None,
            duration_ms,
            error: Some(error),
            gone: false,
        },
    }
}

/// The call proper: `Ok((status, kept body))` once a response arrived, `Err(reason)` otherwise.
async fn exchange(
    call: &HttpCall,
    policy: &AttemptPolicy,
    deadline: Instant,
) -> Result<(u16, String), String> {
    let url = parse_target(&call.url)?;
    // Checked before any DNS lookup: a call that cannot be sent needs no network.
    let headers = request_headers(call)?;
    let addr = tokio::time::timeout_at(deadline, ssrf::resolve_vetted(&url, policy.allow_private))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| match e {
            VetError::Forbidden => "forbidden_address".to_owned(),
            other => other.to_string(),
        })?;

    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err("timeout".into());
    }
    let client = pinned_client(&url, addr, remaining)?;
    let mut request = client.request(call.method.clone(), url).headers(headers);
    if let Some(body) = &call.body {
        request = request.body(body.bytes.clone());
    }
    let response = request.send().await.map_err(describe)?;
    read_response(response, deadline, call.response_body_limit).await
}

/// The headers sent: the caller's, less the ones the call sets itself, then `User-Agent` and the
/// body's `Content-Type`. A bad name or value is an `invalid_header` error that names the header
/// but never repeats its value (it may be a credential).
fn request_headers(call: &HttpCall) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(call.headers.len() + 2);
    for (name, value) in &call.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "invalid_header: a header name is not an HTTP token".to_owned())?;
        // A line break would end the header and start another (or the body) on the wire.
        if value.contains(['\r', '\n']) {
            return Err(format!(
                "invalid_header: the value of {name} contains CR or LF"
            ));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            format!("invalid_header: the value of {name} contains a control character")
        })?;
        if CALL_SET_HEADERS.contains(&name) || (call.body.is_some() && name == CONTENT_TYPE) {
            continue;
        }
        headers.append(name, value);
    }
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(body) = &call.body {
        let content_type = HeaderValue::from_str(&body.content_type)
            .map_err(|_| "invalid_header: the body's content type is not a header value")?;
        headers.insert(CONTENT_TYPE, content_type);
    }
    Ok(headers)
}

/// A client that connects to `addr` only, follows no redirect, uses no proxy and gives up after
/// `timeout`.
fn pinned_client(
    url: &Url,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config())
        .redirect(reqwest::redirect::Policy::none())
        // Environment proxies would connect somewhere other than the vetted address.
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(timeout);
    // Pin the name to the vetted address so the connection does not resolve it again (a second
    // answer could be a private address). Literal IPs are connected to as they are.
    if let Some(Host::Domain(name)) = url.host() {
        builder = builder.resolve(name, addr);
    }
    builder
        .build()
        .map_err(|e| format!("client_error: {}", error_text(e)))
}

/// Reads the response: its status, and the first `limit` bytes of its body as lossy UTF-8.
async fn read_response(
    mut response: reqwest::Response,
    deadline: Instant,
    limit: usize,
) -> Result<(u16, String), String> {
    let status = response.status().as_u16();
    // The whole response must arrive within the deadline: a receiver that sends its status and
    // then trickles (or never ends) its body has not answered, whatever the status said. The
    // first `limit` bytes are kept; reading stops after RESPONSE_READ_LIMIT bytes, or `limit` if
    // more (a receiver streaming a large body quickly has answered).
    let read_limit = RESPONSE_READ_LIMIT.max(limit);
    // One byte past the limit tells `lossy_prefix` that the body goes on, so a character cut in
    // two at the limit is dropped instead of shown as a replacement character.
    let keep = limit.saturating_add(1);
    let mut kept = Vec::new();
    let mut read = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                read = read.saturating_add(chunk.len());
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if read >= read_limit {
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(format!("response_body_error: {}", error_text(e))),
            Err(_) => {
                return Err(format!(
                    "timeout: the response body (status {status}) did not end in time"
                ))
            }
        }
    }
    Ok((status, lossy_prefix(&kept, limit)))
}

/// Parses the stored URL again: it was validated when saved, but the attempt must not trust that.
fn parse_target(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|_| "invalid_url: unparseable".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("invalid_url: scheme must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("invalid_url: user information".into());
    }
    Ok(url)
}

/// The reason for a failed request, without the URL (which may carry tokens in its query).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    let prefix = if e.is_connect() {
        "connection_error"
    } else if e.is_builder() {
        "invalid_request"
    } else {
        "request_error"
    };
    format!("{prefix}: {}", error_text(e))
}

/// An error and its sources joined with `: `, without the URL, cut to a bounded length.
fn error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let mut text = parts.join(": ");
    if text.len() > ERROR_TEXT_LIMIT {
        let mut cut = ERROR_TEXT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The first `max` bytes as UTF-8, invalid sequences replaced, and a character cut in two at the
/// end dropped rather than shown as a replacement character.
fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    let mut prefix = &bytes[..bytes.len().min(max)];
    if bytes.len() > max {
        if let Err(e) = std::str::from_utf8(prefix) {
            // `error_len() == None` means the input ended inside a character.
            if e.error_len().is_none() {
                prefix = &prefix[..e.valid_up_to()];
            }
        }
    }
    String::from_utf8_lossy(prefix).into_owned()
}

/// The TLS configuration shared by every attempt: built once, OS roots, aws-lc-rs.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                tracing::warn!(
                    errors = loaded.errors.len(),
                    "no root certificates found; https webhooks will fail"
                );
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_body_is_cut_at_1_kb_without_a_broken_character() {
        let ascii = vec![b'a'; 3000];
        assert_eq!(lossy_prefix(&ascii, 1024).len(), 1024);
        // 'é' is two bytes: 1023 bytes of 'a' then 'é' straddles the limit.
        let mut straddle = vec![b'a'; 1023];
        straddle.extend_from_slice("é".as_bytes());
        straddle.extend_from_slice(b"tail");
        let kept = lossy_prefix(&straddle, 1024);
        assert_eq!(kept, "a".repeat(1023));
        // Invalid bytes inside the prefix are replaced, not dropped.
        assert_eq!(lossy_prefix(b"ok\xffok", 1024), "ok\u{fffd}ok");
        assert_eq!(lossy_prefix(b"", 1024), "");
    }

    #[test]
    fn a_delivery_attempt_is_a_signed_json_post_keeping_1_kb() {
        let secret = WebhookSecret::generate();
        let req = AttemptRequest {
            url: "https://hooks.example.com/x".into(),
            webhook_id: "evt_1".into(),
            body: br#"{"a":1}"#.to_vec(),
            secrets: vec![secret],
        };
        let call = signed_call(&req);
        assert_eq!(call.method, Method::POST);
        assert_eq!(call.url, req.url);
        assert_eq!(call.body, Some(RequestBody::json(req.body.clone())));
        assert_eq!(call.response_body_limit, 1024);
        let names: Vec<&str> = call.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        // Without a secret there is nothing to sign, and no signature header.
        let unsigned = signed_call(&AttemptRequest {
            secrets: vec![],
            ..req
        });
        assert_eq!(unsigned.headers.len(), 2);
    }

    fn call_with(headers: &[(&str, &str)], body: bool) -> HttpCall {
        HttpCall {
            method: Method::PUT,
            url: "https://example.com/".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.then(|| RequestBody::json(b"{}".to_vec())),
            response_body_limit: 10,
        }
    }

    #[test]
    fn the_call_sets_its_own_headers_over_the_callers() {
        let headers = request_headers(&call_with(
            &[
                ("X-Tag", "a"),
                ("x-tag", "b"),
                ("User-Agent", "spoof"),
                ("Host", "elsewhere.example"),
                ("Content-Length", "0"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "keep-alive"),
                ("Content-Type", "text/plain"),
            ],
            true,
        ))
        .unwrap();
        let all = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("x-tag"), ["a", "b"]);
        assert_eq!(all("user-agent"), [USER_AGENT_VALUE]);
        assert_eq!(all("content-type"), ["application/json"]);
        for dropped in ["host", "content-length", "transfer-encoding", "connection"] {
            assert!(all(dropped).is_empty(), "{dropped}");
        }
        // Without a body the caller's Content-Type is the only one.
        let headers =
            request_headers(&call_with(&[("Content-Type", "text/plain")], false)).unwrap();
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "text/plain");
    }

    #[test]
    fn bad_headers_are_refused_without_repeating_their_value() {
        for (name, value, expected) in [
            (
                "X-A",
                "secret\r\nX-Injected: 1",
                "invalid_header: the value of x-a contains CR or LF",
            ),
            (
                "X-A",
                "secret\nmore",
                "invalid_header: the value of x-a contains CR or LF",
            ),
            (
                "X-A",
                "secret\0",
                "invalid_header: the value of x-a contains a control character",
            ),
            (
                "Bad Name",
                "secret",
                "invalid_header: a header name is not an HTTP token",
            ),
            (
                "",
                "secret",
                "invalid_header: a header name is not an HTTP token",
            ),
        ] {
            let error = request_headers(&call_with(&[(name, value)], false)).unwrap_err();
            assert_eq!(error, expected, "{name:?}");
        }
    }

    #[test]
    fn only_calls_refused_before_sending_count_as_refused() {
        let outcome = |status: Option<u16>, error: Option<&str>| AttemptOutcome {
            success: false,
            status,
            body: None,
            duration_ms: 1,
            error: error.map(str::to_owned),
            gone: false,
        };
        for refused in [
            "forbidden_address",
            "invalid_url: unparseable",
            "invalid_header: a header name is not an HTTP token",
            "invalid_request: builder error",
        ] {
            assert!(outcome(None, Some(refused)).refused(), "{refused}");
        }
        for transient in [
            "timeout",
            "timeout: the response body (status 200) did not end in time",
            "dns_error: no address",
            "connection_error: refused",
            "request_error: reset",
            "invalid_urlish",
        ] {
            assert!(!outcome(None, Some(transient)).refused(), "{transient}");
        }
        assert!(!outcome(Some(400), None).refused());
    }

    #[test]
    fn stored_urls_are_checked_again_before_an_attempt() {
        assert!(parse_target("https://example.com/x").is_ok());
        assert!(parse_target("ftp://example.com/").is_err());
        assert!(parse_target("https://u:p@example.com/").is_err());
        assert!(parse_target("nonsense").is_err());
    }
}
