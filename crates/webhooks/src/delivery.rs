//! One HTTP attempt of a webhook delivery: vet the address (SSRF), then POST
//! the signed body to exactly that address, without following redirects, within a timeout.
//!
//! Talks to the customer's endpoint over HTTP/1.1 with reqwest, TLS through rustls with the
//! aws-lc-rs provider and the operating system's root certificates (the stack the AWS SDK uses).

use crate::secret::WebhookSecret;
use crate::signature;
use crate::ssrf::{self, VetError};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use url::{Host, Url};

/// The `User-Agent` of every attempt.
pub const USER_AGENT_VALUE: &str = "plunk-webhooks/1";

/// Response bytes read at most before the response counts as complete.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// Per-attempt timeout: the whole exchange, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of the response body is kept, in bytes.
pub const RESPONSE_BODY_LIMIT: usize = 1024;

/// Longest error text kept in an outcome.
const ERROR_TEXT_LIMIT: usize = 500;

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
    /// The first 1 KB of the response body as lossy UTF-8, if a response arrived.
    pub body: Option<String>,
    /// Time the attempt took.
    pub duration_ms: u64,
    /// Why no response arrived: `forbidden_address`, `timeout`, `invalid_url: …`, `dns_error: …`
    /// or a connection error text. Never contains the URL or a secret.
    pub error: Option<String>,
    /// The endpoint answered 410 Gone: the webhook must be disabled.
    pub gone: bool,
}

/// Makes one attempt. Never panics and never returns early without an outcome: every failure is
/// described in [`AttemptOutcome::error`].
pub async fn attempt(req: &AttemptRequest, policy: &AttemptPolicy) -> AttemptOutcome {
    let started = Instant::now();
    let deadline = started + policy.timeout;
    let result = run(req, policy, deadline).await;
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

/// The attempt proper: `Ok((status, kept body))` once a response arrived, `Err(reason)` otherwise.
async fn run(
    req: &AttemptRequest,
    policy: &AttemptPolicy,
    deadline: Instant,
) -> Result<(u16, String), String> {
    let url = parse_target(&req.url)?;
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
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config())
        .redirect(reqwest::redirect::Policy::none())
        // Environment proxies would connect somewhere other than the vetted address.
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(remaining);
    // Pin the name to the vetted address so the connection does not resolve it again (a second
    // answer could be a private address). Literal IPs are connected to as they are.
    if let Some(Host::Domain(name)) = url.host() {
        builder = builder.resolve(name, addr);
    }
    let client = builder
        .build()
        .map_err(|e| format!("client_error: {}", error_text(e)))?;

    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("webhook-id", &req.webhook_id)
        .header("webhook-timestamp", timestamp.to_string());
    let signatures = signature::sign(&req.webhook_id, timestamp, &req.body, &req.secrets);
    if !signatures.is_empty() {
        request = request.header("webhook-signature", signatures);
    }
    let mut response = request
        .body(req.body.clone())
        .send()
        .await
        .map_err(describe)?;

    let status = response.status().as_u16();
    // The whole response must arrive within the deadline: a receiver that sends its status and
    // then trickles (or never ends) its body has not answered, whatever the status said. The
    // first RESPONSE_BODY_LIMIT bytes are kept; reading stops after RESPONSE_READ_LIMIT bytes (a
    // receiver streaming a large body quickly has answered).
    let mut kept = Vec::new();
    let mut read = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                read = read.saturating_add(chunk.len());
                let room = RESPONSE_BODY_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if read >= RESPONSE_READ_LIMIT {
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
    Ok((status, lossy_prefix(&kept, RESPONSE_BODY_LIMIT)))
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
    fn stored_urls_are_checked_again_before_an_attempt() {
        assert!(parse_target("https://example.com/x").is_ok());
        assert!(parse_target("ftp://example.com/").is_err());
        assert!(parse_target("https://u:p@example.com/").is_err());
        assert!(parse_target("nonsense").is_err());
    }
}
