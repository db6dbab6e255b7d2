//! Authentication, key types, rate limits and disabled projects: checks 5–8 of the request pipeline,
//! run as a route layer so they happen after routing and the body-size check.
//!
//! The layer puts an [`AuthContext`] in the request extensions for handlers and stamps the
//! `RateLimit-*` headers on every authenticated response, whatever its outcome.
//!
//! Limits: secret-key requests count against the project's limit; public-key
//! requests against a budget of the same size apart from it, and against
//! [`PUBLIC_REQUESTS_PER_SOURCE`] per project and source address, so a page's visitors (or
//! whoever copied its public key) can use up neither the server's requests nor each other's.
//! Requests that fail authentication count per source address: past
//! [`FAILED_AUTH_PER_SOURCE`] in a minute that source gets 429 for the rest of it, answered from
//! memory without a store write, and a well-formed key found unknown is remembered as unknown for
//! [`UNKNOWN_KEY_TTL`], so repeated bad keys cost no store read. Sources are hashed (see
//! [`crate::pipeline::source_key`]); a request whose source is unknown (in-process callers) is
//! not counted per source.

use crate::error::{ApiError, ErrorCode};
use crate::pipeline::{source_ip, source_key};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method};
use plunk_domain::project::{hash_key, hashes_equal, key_shape, KeyType, Project};
use plunk_domain::Timestamp;
use plunk_store::lookup_cache::TtlCache;
use plunk_store::{KeyLookup, RateDecision};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Which keys a group of routes accepts and whether its writes are refused on disabled projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Secret keys only (every dashboard endpoint).
    Secret,
    /// Secret keys only, and allowed on disabled projects although it is a POST
    /// (`POST /contacts/lookup`).
    SecretReadOnly,
    /// Secret or public keys (`POST /v1/track`).
    PublicOrSecret,
}

/// Who is calling: available to handlers as an extractor.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub project: Project,
    pub key_type: KeyType,
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&"route is missing the auth layer"))
    }
}

/// Public-key requests per project, source address and minute, unless the deployment sets
/// another number (`Settings::public_requests_per_source`).
pub const PUBLIC_REQUESTS_PER_SOURCE: u32 = 120;
/// Requests per source address and minute that may fail authentication before that source gets
/// 429.
pub const FAILED_AUTH_PER_SOURCE: u32 = 60;
/// How long a well-formed key found unknown is remembered as unknown.
pub const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(5);

/// Key lookups cached for a bounded time (at most 60 s), so most requests cost
/// no store read for authentication. Unknown keys are remembered for at most
/// [`UNKNOWN_KEY_TTL`] (never longer than known ones), so a key created meanwhile works within
/// seconds.
pub struct KeyCache {
    known: TtlCache<String, KeyLookup>,
    unknown: TtlCache<String, ()>,
}

impl KeyCache {
    /// A cache whose known keys live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            known: TtlCache::new(ttl),
            unknown: TtlCache::new(ttl.min(UNKNOWN_KEY_TTL)),
        }
    }

    fn get(&self, hash: &str) -> Option<KeyLookup> {
        self.known.get(&hash.to_owned())
    }

    fn put(&self, hash: String, lookup: KeyLookup) {
        self.known.put(hash, lookup)
    }

    fn is_known_unknown(&self, hash: &str) -> bool {
        self.unknown.get(&hash.to_owned()).is_some()
    }

    fn put_unknown(&self, hash: String) {
        self.unknown.put(hash, ())
    }
}

/// The sources over [`FAILED_AUTH_PER_SOURCE`] this minute, as this process last saw them: their
/// further failures are answered without a store write.
#[derive(Default)]
pub struct FailedAuth {
    over: Mutex<HashMap<String, i64>>,
}

/// Most sources [`FailedAuth`] remembers before it starts over.
const FAILED_AUTH_CAPACITY: usize = 10_000;

impl FailedAuth {
    /// Counts a failed authentication of `source` at `now_unix`; `Some(seconds to the window's
    /// end)` when the source is over the limit.
    async fn over_limit(&self, state: &AppState, source: &str, now_unix: i64) -> Option<u32> {
        let minute = now_unix.div_euclid(60);
        let reset = (60 - now_unix.rem_euclid(60)) as u32;
        let known_over = self
            .over
            .lock()
            .ok()
            .is_some_and(|over| over.get(source) == Some(&minute));
        if known_over {
            return Some(reset);
        }
        let decision = state
            .store
            .rate_limiter()
            .hit_auth_failure(source, FAILED_AUTH_PER_SOURCE, now_unix)
            .await;
        if decision.allowed {
            return None;
        }
        if let Ok(mut over) = self.over.lock() {
            if over.len() >= FAILED_AUTH_CAPACITY {
                over.clear();
            }
            over.insert(source.to_owned(), minute);
        }
        Some(decision.reset_seconds)
    }
}

/// Reads `Authorization: Bearer <key>`: scheme case-insensitive, exactly one space, a non-empty
/// key without whitespace.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") || key.is_empty() {
        return None;
    }
    if key.chars().any(char::is_whitespace) {
        return None;
    }
    Some(key)
}

async fn lookup(state: &AppState, plain: &str) -> Result<KeyLookup, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidApiKey, "The API key is not valid");
    key_shape(plain).ok_or_else(invalid)?;
    let hash = hash_key(plain);
    let found = match state.keys.get(&hash) {
        Some(hit) => hit,
        None if state.keys.is_known_unknown(&hash) => return Err(invalid()),
        None => match state.store.projects().find_key(&hash).await? {
            Some(found) => {
                state.keys.put(hash.clone(), found.clone());
                found
            }
            None => {
                state.keys.put_unknown(hash);
                return Err(invalid());
            }
        },
    };
    // The store looked the key up by hash; compare the stored hash in constant time anyway so no
    // timing difference depends on how much of a guessed key matched.
    if !hashes_equal(&found.key.sha256, &hash) || !found.key.is_active(Timestamp::now()) {
        return Err(invalid());
    }
    Ok(found)
}

/// Puts a route's methods behind the body-size check and then authentication for `access`.
/// Applied per method router with `route_layer`, so an unknown method still gets 405 before any
/// authentication (pipeline steps 3–5).
pub fn guarded(
    state: &AppState,
    access: Access,
    methods: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    methods
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), access),
            authenticate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::pipeline::body_limit,
        ))
}

/// The authentication layer for `access` (see [`guarded`]).
pub async fn authenticate(
    State((state, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let source = source_ip(req.extensions()).map(|ip| source_key(Some(ip)));
    let now = Timestamp::now().unix_seconds();
    let Some(plain) = bearer(req.headers()) else {
        let missing = ApiError::new(
            ErrorCode::MissingAuth,
            "Authorization: Bearer <key> is required",
        );
        return unauthenticated(&state, source.as_deref(), now, missing).await;
    };
    let found = match lookup(&state, plain).await {
        Ok(found) => found,
        Err(e) if e.code == ErrorCode::InvalidApiKey => {
            return unauthenticated(&state, source.as_deref(), now, e).await
        }
        Err(e) => return e.into_response(),
    };
    if found.key.key_type == KeyType::Public && access != Access::PublicOrSecret {
        return ApiError::new(
            ErrorCode::InvalidKeyType,
            "Public keys work only on POST /v1/track",
        )
        .into_response();
    }
    let project = found.project;
    let rate = match found.key.key_type {
        KeyType::Secret => {
            state
                .store
                .rate_limiter()
                .hit(project.id, project.rate_limit_per_minute, now)
                .await
        }
        KeyType::Public => public_rate(&state, &project, source.as_deref(), now).await,
    };
    let mut response = if !rate.allowed {
        ApiError::new(
            ErrorCode::RateLimitExceeded,
            "Too many requests this minute",
        )
        .with_details(json!({ "limit": rate.limit, "retryAfter": rate.reset_seconds }))
        .with_retry_after(u64::from(rate.reset_seconds))
        .into_response()
    } else if project.disabled && is_write(req.method()) && access != Access::SecretReadOnly {
        ApiError::new(ErrorCode::ProjectDisabled, "The project is disabled")
            .with_details(
                json!({ "reason": project.disabled_reason.as_deref().unwrap_or("MANUAL") }),
            )
            .into_response()
    } else {
        req.extensions_mut().insert(AuthContext {
            project,
            key_type: found.key.key_type,
        });
        next.run(req).await
    };
    stamp_rate_headers(response.headers_mut(), &rate);
    response
}

/// Counts a public-key request: per source first (a source over its limit does not spend the
/// project's public budget), then the budget. The headers report the tighter of the two.
async fn public_rate(
    state: &AppState,
    project: &Project,
    source: Option<&str>,
    now: i64,
) -> RateDecision {
    let limiter = state.store.rate_limiter();
    let per_source = match source {
        Some(source) => {
            let decision = limiter
                .hit_public_source(
                    project.id,
                    source,
                    state.settings.public_requests_per_source,
                    now,
                )
                .await;
            if !decision.allowed {
                return decision;
            }
            Some(decision)
        }
        None => None,
    };
    let budget = limiter
        .hit_public(project.id, project.rate_limit_per_minute, now)
        .await;
    match per_source {
        Some(per_source) if budget.allowed && per_source.remaining < budget.remaining => per_source,
        _ => budget,
    }
}

/// The answer to a request that failed authentication: `error` (401), or 429 when its source is
/// over [`FAILED_AUTH_PER_SOURCE`] this minute.
async fn unauthenticated(
    state: &AppState,
    source: Option<&str>,
    now: i64,
    error: ApiError,
) -> Response {
    let Some(source) = source else {
        return error.into_response();
    };
    match state.failed_auth.over_limit(state, source, now).await {
        None => error.into_response(),
        Some(reset) => ApiError::new(
            ErrorCode::RateLimitExceeded,
            "Too many requests with a missing or invalid key from this address this minute",
        )
        .with_details(json!({ "limit": FAILED_AUTH_PER_SOURCE, "retryAfter": reset }))
        .with_retry_after(u64::from(reset))
        .into_response(),
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn stamp_rate_headers(headers: &mut HeaderMap, rate: &RateDecision) {
    headers.insert("ratelimit-limit", HeaderValue::from(rate.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(rate.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(rate.reset_seconds));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_exactly_one_space() {
        assert_eq!(bearer(&headers("Bearer sk_x")), Some("sk_x"));
        assert_eq!(bearer(&headers("bEaReR sk_x")), Some("sk_x"));
        assert_eq!(bearer(&headers("Bearer  sk_x")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer sk_x y")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
