//! Request limits, each one counter item per UTC minute incremented with a
//! conditional ADD, so a limit holds across any number of processes:
//! - the per-project limit of secret-key requests, and a budget of the same size for public-key
//!   requests, apart, so a page's visitors cannot use up the server's requests;
//! - public-key requests per project and source address;
//! - requests per source that fail authentication;
//! - the hosted pages' per-source limit.
//!
//! Sources are hashes of addresses, never addresses.

use crate::keys;
use crate::table::{StoreError, Table};
use uuid::Uuid;

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left in this window (≥ 0).
    pub remaining: u32,
    /// Whole seconds until the window resets (1–60).
    pub reset_seconds: u32,
}

/// Counts requests against a project's limit.
pub struct RateLimiter<'a> {
    table: &'a dyn Table,
}

impl<'a> RateLimiter<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Counts one request at `now_unix` (seconds). If the store fails the request is allowed
    /// (fail-open) and the failure is logged.
    pub async fn hit(&self, project: Uuid, limit: u32, now_unix: i64) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::rate_counter(project, minute),
            limit,
            now_unix,
            &project,
        )
        .await
    }

    /// Counts one public-key request to `project` against its public budget of `limit`.
    pub async fn hit_public(&self, project: Uuid, limit: u32, now_unix: i64) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::public_rate_counter(project, minute),
            limit,
            now_unix,
            &project,
        )
        .await
    }

    /// Counts one public-key request of `source` to `project` against `limit`.
    pub async fn hit_public_source(
        &self,
        project: Uuid,
        source: &str,
        limit: u32,
        now_unix: i64,
    ) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::public_source_rate_counter(project, source, minute),
            limit,
            now_unix,
            &project,
        )
        .await
    }

    /// Counts one request of `source` that failed authentication against `limit`.
    pub async fn hit_auth_failure(&self, source: &str, limit: u32, now_unix: i64) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::auth_failure_counter(source, minute),
            limit,
            now_unix,
            &"failed authentication",
        )
        .await
    }

    /// Counts one webhook test send or manual retry of `project` against `limit` a minute.
    pub async fn hit_webhook_calls(
        &self,
        project: Uuid,
        limit: u32,
        now_unix: i64,
    ) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::webhook_calls_counter(project, minute),
            limit,
            now_unix,
            &project,
        )
        .await
    }

    /// Counts one hosted-page request of `source` (an opaque, already hashed client address)
    /// against `limit` per UTC minute. Fail-open like [`RateLimiter::hit`].
    pub async fn hit_source(&self, source: &str, limit: u32, now_unix: i64) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        self.count(
            keys::page_rate_counter(source, minute),
            limit,
            now_unix,
            &"hosted pages",
        )
        .await
    }

    async fn count(
        &self,
        key: crate::table::Key,
        limit: u32,
        now_unix: i64,
        what: &(dyn std::fmt::Display + Sync),
    ) -> RateDecision {
        let minute = now_unix.div_euclid(60);
        let reset_seconds = (60 - now_unix.rem_euclid(60)) as u32;
        // Kept a little past its minute; DynamoDB's TTL sweep removes it later.
        let ttl = (minute + 2) * 60;
        let decision = |allowed: bool, count: i64| RateDecision {
            allowed,
            limit,
            remaining: (i64::from(limit) - count).max(0) as u32,
            reset_seconds,
        };
        match self
            .table
            .add(&key, 1, Some(i64::from(limit)), Some(ttl))
            .await
        {
            Ok(count) => decision(true, count),
            Err(StoreError::ConditionFailed { .. }) => decision(false, i64::from(limit)),
            Err(error) => {
                tracing::warn!(limiter = %what, %error, "rate limiter store failed; allowing request");
                decision(true, 0)
            }
        }
    }
}
