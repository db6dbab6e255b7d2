//! Abuse protection of the hosted pages (spec feedback-and-unsubscribe.md §4, recommended): at
//! most [`PAGE_REQUESTS_PER_MINUTE`] requests per source address and UTC minute, counted in the
//! table so every function instance shares the count; over it → a 429 page. The pages are
//! exempt from the per-project API limit (they carry no key).
//!
//! The source is the API gateway's `sourceIp` when present, else the socket peer (see
//! `plunk_http_kit::pipeline::source_ip`). IPv6 sources count per /64, the block one subscriber
//! usually holds. Only a hash of the source is stored, and only for two minutes.

use super::html::Page;
use super::i18n::fixed;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use plunk_domain::Timestamp;
use plunk_http_kit::pipeline::source_ip;
use plunk_http_kit::AppState;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Requests per source address per minute.
pub const PAGE_REQUESTS_PER_MINUTE: u32 = 60;

/// The counted form of a source: a hash of the address (of its /64 for IPv6). Requests whose
/// source is unknown (in-process tests) share one bucket.
pub fn source_key(ip: Option<IpAddr>) -> String {
    let canonical = match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    };
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Route layer: counts the request, answers 429 over the limit.
pub async fn per_source(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = source_key(source_ip(req.extensions()));
    let decision = state
        .store
        .rate_limiter()
        .hit_source(
            &key,
            PAGE_REQUESTS_PER_MINUTE,
            Timestamp::now().unix_seconds(),
        )
        .await;
    if decision.allowed {
        return next.run(req).await;
    }
    let mut page = Page::new(StatusCode::TOO_MANY_REQUESTS, "en", fixed::TOO_MANY_HEADING);
    page.paragraphs.push(fixed::TOO_MANY_MESSAGE.to_owned());
    page.retry_after = Some(decision.reset_seconds);
    page.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_hashed_and_ipv6_counts_per_64() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert_ne!(source_key(Some(a)), source_key(Some(b)));
        assert!(!source_key(Some(a)).contains("203"));
        assert_eq!(source_key(Some(a)).len(), 24);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(source_key(Some(mapped)), source_key(Some(a)));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(Some(v6a)), source_key(Some(v6b)));
        assert_ne!(source_key(Some(v6a)), source_key(Some(v6c)));
        assert_eq!(source_key(None), source_key(None));
    }
}
