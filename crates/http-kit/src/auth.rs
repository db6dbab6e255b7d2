//! Authentication, key types, rate limits and disabled projects: checks 5–8 of spec README §4,
//! run as a route layer so they happen after routing and the body-size check.
//!
//! The layer puts an [`AuthContext`] in the request extensions for handlers and stamps the
//! `RateLimit-*` headers on every authenticated response, whatever its outcome.

use crate::error::{ApiError, ErrorCode};
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

/// Key lookups cached for a bounded time (spec README §5: at most 60 s), so most requests cost
/// no store read for authentication. Unknown keys are not cached, so a new key works at once.
pub struct KeyCache(TtlCache<String, KeyLookup>);

impl KeyCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self(TtlCache::new(ttl))
    }

    fn get(&self, hash: &str) -> Option<KeyLookup> {
        self.0.get(&hash.to_owned())
    }

    fn put(&self, hash: String, lookup: KeyLookup) {
        self.0.put(hash, lookup)
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
        None => {
            let found = state
                .store
                .projects()
                .find_key(&hash)
                .await?
                .ok_or_else(invalid)?;
            state.keys.put(hash.clone(), found.clone());
            found
        }
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
/// authentication (spec README §4 steps 3–5).
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
    let Some(plain) = bearer(req.headers()) else {
        return ApiError::new(
            ErrorCode::MissingAuth,
            "Authorization: Bearer <key> is required",
        )
        .into_response();
    };
    let found = match lookup(&state, plain).await {
        Ok(found) => found,
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
    let now = Timestamp::now().unix_seconds();
    let rate = state
        .store
        .rate_limiter()
        .hit(project.id, project.rate_limit_per_minute, now)
        .await;
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
