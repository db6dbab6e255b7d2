//! Abuse protection of the hosted pages: at
//! most [`PAGE_REQUESTS_PER_MINUTE`] requests per source address and UTC minute, counted in the
//! table so every function instance shares the count; over it → a 429 page. The pages are
//! exempt from the per-project API limit (they carry no key).
//!
//! The source is the API gateway's `sourceIp` when present, else the socket peer (see
//! `plunk_http_kit::pipeline::source_ip`), counted by `source_key`: IPv6 sources per /64, and
//! only a hash of the source is stored, for two minutes.

use super::html::Page;
use super::i18n::fixed;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use plunk_domain::Timestamp;
use plunk_http_kit::pipeline::{source_ip, source_key};
use plunk_http_kit::AppState;

/// Requests per source address per minute.
pub const PAGE_REQUESTS_PER_MINUTE: u32 = 60;

/// Route layer: counts the request, answers 429 over the limit. A POST whose token verifies is
/// neither counted nor refused: one-click unsubscribes of a large campaign arrive from a few
/// mailbox providers' addresses, and guessing tokens (what the limit is for) never verifies.
pub async fn per_source(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == http::Method::POST && carries_valid_token(&state, req.uri().path()).await {
        return next.run(req).await;
    }
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

/// Whether the path's last segment is a token this deployment signed.
async fn carries_valid_token(state: &AppState, path: &str) -> bool {
    let token = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    match state.store.page_tokens().await {
        Ok(keys) => keys.verify(token).is_some(),
        Err(_) => false,
    }
}
