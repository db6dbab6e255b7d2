//! Idempotency for `POST /v1/send`, `POST /v1/track` and
//! `POST /campaigns/:id/send`.
//!
//! A handler parses the header with [`IdempotencyKey::from_headers`] right after its JSON body
//! (check 10 of the request pipeline, before query and body validation) and wraps everything else in
//! [`execute`]:
//!
//! ```ignore
//! let key = IdempotencyKey::from_headers(&headers)?;
//! execute(&state, auth.project.id, key, &Method::POST, uri.path(), &body, |ids| async move {
//!     // validate, then create resources with ids.id(0), ids.id(1), …
//! })
//! .await
//! ```
//!
//! How a key moves (one item per project and key, see `plunk_store::repo::idempotency`):
//!
//! - unknown (or older than 24 h) → claimed with a conditional create, state `IN_PROGRESS` with a
//!   60 s lock, then `run` executes;
//! - `run` answered 2xx → `COMPLETED` with the status and exact body bytes; later requests with
//!   the same fingerprint get them back with `Idempotent-Replayed: true`;
//! - 4xx → the record is deleted (if still ours), so a corrected request may reuse the key;
//! - 5xx → `RETRYABLE`: the next request with the same fingerprint runs again with the same
//!   [`ReservedIds`], so whatever the failed attempt stored is not duplicated;
//! - `IN_PROGRESS` with an expired lock (the attempt died) → taken over like `RETRYABLE`.
//!
//! Every change after the create is conditional on the record's version, so of two racing
//! requests exactly one runs; the other gets 409 `IDEMPOTENCY_KEY_IN_PROGRESS`.
//!
//! An attempt that panics ends like a 5xx (`RETRYABLE`). One that is cancelled (client gone,
//! function timeout) leaves its record `IN_PROGRESS`; its lock then expires and the next retry
//! takes over. Handlers must finish well within the lock (API functions time out long before
//! 60 s), or a takeover could overlap them.

use crate::auth::AuthContext;
use crate::envelope::JSON_UTF8;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use plunk_domain::project::KeyType;
use plunk_domain::Timestamp;
use plunk_store::repo::idempotency::{
    Idempotency, IdempotencyRecord, IdempotencyState, StoredResponse,
};
use plunk_store::table::StoreError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use uuid::Uuid;

/// The request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header that marks a replay.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a claimed key waits for its attempt before another request may take it over.
pub const LOCK: Duration = Duration::from_secs(60);

/// Longest accepted key, in characters (= bytes: only printable ASCII is allowed).
pub const MAX_KEY_LEN: usize = 256;

/// Responses are stored inside the key's record, which must stay below the store's 400 KB item
/// limit. The responses of the idempotent endpoints are a few KB (at most 50 recipients); a body
/// over this size is still stored, and if the store refuses it the key is marked retryable
/// instead (see [`settle`]), so a retry runs again with the same ids rather than replaying.
pub const MAX_STORED_BODY_BYTES: usize = 300 * 1024;

/// How often a claim is retried after losing a race before answering `IN_PROGRESS`.
const MAX_CLAIM_ATTEMPTS: usize = 4;

/// A parsed `Idempotency-Key` header: 1–256 characters, each printable ASCII (0x20–0x7E).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a request: `None` without the header, 400 `INVALID_IDEMPOTENCY_KEY` when it is
    /// empty, longer than 256 characters or not printable ASCII. With several headers the first
    /// one counts.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        headers
            .get(&IDEMPOTENCY_KEY)
            .map(|value| Self::parse(value.as_bytes()))
            .transpose()
    }

    /// Checks a raw header value.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_KEY_LEN
            && raw.iter().all(|b| (0x20..=0x7e).contains(b));
        match std::str::from_utf8(raw) {
            Ok(text) if valid => Ok(Self(text.to_owned())),
            _ => Err(ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1–256 printable ASCII characters",
            )),
        }
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the key: what the store addresses a secret key's record by.
    pub fn sha256_hex(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// What the store addresses the record by for keys of `key_type`: keys used with the public
    /// key live apart from the secret key's, so a page's visitors can neither block nor learn
    /// about the server's keys.
    pub fn address(&self, key_type: KeyType) -> String {
        match key_type {
            KeyType::Secret => self.sha256_hex(),
            KeyType::Public => {
                let mut hasher = Sha256::new();
                hasher.update(b"public\0");
                hasher.update(self.0.as_bytes());
                hex(&hasher.finalize())
            }
        }
    }
}

/// Whose idempotency keys these are: a project's, with one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner {
    pub project: Uuid,
    pub key_type: KeyType,
}

impl From<&AuthContext> for KeyOwner {
    fn from(auth: &AuthContext) -> Self {
        Self {
            project: auth.project.id,
            key_type: auth.key_type,
        }
    }
}

/// Ids for the resources a request creates that stay the same when an attempt that ended in 5xx
/// (or died) is retried with the same key and fingerprint.
///
/// `id(i)` is a UUIDv7 derived from the first attempt's time and a random seed kept in the key's
/// record: 48 bits of Unix milliseconds, the version, `i` as a 32-bit counter (12 bits of
/// `rand_a`, then the top 20 bits of `rand_b` after the variant), and 42 bits of
/// SHA-256(seed, i). So ids are valid UUIDv7s that increase with `i` and sort by the request's
/// first use; the 42 seed-derived bits keep the ids of different requests of the same
/// millisecond apart (as the random bits of ordinary v7 ids do).
#[derive(Debug, Clone)]
pub struct ReservedIds {
    seed: [u8; 16],
    millis: u64,
    attempt: u32,
}

impl ReservedIds {
    /// Ids for a request without a key: a random seed and the current time.
    pub fn fresh() -> Self {
        Self {
            seed: random_seed(),
            millis: Timestamp::now().unix_millis().max(0) as u64,
            attempt: 1,
        }
    }

    fn of(record: &IdempotencyRecord) -> Result<Self, StoreError> {
        let seed = decode_hex(&record.seed)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .ok_or_else(|| StoreError::Other("corrupt idempotency seed".into()))?;
        Ok(Self {
            seed,
            millis: record.first_used_at.unix_millis().max(0) as u64,
            attempt: record.attempts,
        })
    }

    /// The `index`-th id. The same on every attempt of one request.
    ///
    /// # Panics
    /// If `index` is 2³² or more.
    pub fn id(&self, index: usize) -> Uuid {
        let counter = u32::try_from(index).expect("fewer than 2^32 reserved ids");
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(counter.to_be_bytes());
        let noise = hasher.finalize();
        let ms = self.millis.to_be_bytes();
        let c = counter;
        let bytes = [
            ms[2],
            ms[3],
            ms[4],
            ms[5],
            ms[6],
            ms[7],
            0x70 | (c >> 28) as u8,
            (c >> 20) as u8,
            0x80 | ((c >> 14) as u8 & 0x3f),
            (c >> 6) as u8,
            ((c as u8 & 0x3f) << 2) | (noise[0] & 0x03),
            noise[1],
            noise[2],
            noise[3],
            noise[4],
            noise[5],
        ];
        Uuid::from_bytes(bytes)
    }

    /// 1 on the first attempt; higher when re-running after a 5xx or taking over a dead attempt,
    /// when some of the ids may already be stored.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Tuning of [`execute_with`]; [`execute`] uses the defaults.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyOptions {
    /// How long an attempt holds the key before others may take it over ([`LOCK`]).
    pub lock: Duration,
}

impl Default for IdempotencyOptions {
    fn default() -> Self {
        Self { lock: LOCK }
    }
}

/// A `POST` handler's whole idempotent run: reads `Idempotency-Key` from `headers` (400 when
/// malformed), runs `accept` under it and answers with its `data` envelope or error.
pub async fn post<T, F, Fut>(
    state: &AppState,
    owner: KeyOwner,
    headers: &HeaderMap,
    path: &str,
    body: &Map<String, Value>,
    accept: F,
) -> Response
where
    T: serde::Serialize,
    F: FnOnce(ReservedIds) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let key = match IdempotencyKey::from_headers(headers) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    execute(
        state,
        owner,
        key,
        &Method::POST,
        path,
        body,
        |ids| async move {
            match accept(ids).await {
                Ok(data) => crate::Envelope::ok(data).into_response(),
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}

/// Runs `run` at most once per (project, key type, key) for 24 h, replaying its 2xx response. Without a
/// key, `run` simply runs with fresh ids. `path` is the request path (e.g.
/// `/v1/send`), `body` the parsed JSON body; both go into the fingerprint. If the store fails
/// before `run` started, the answer is that failure (503/500) and `run` does not run.
pub async fn execute<F, Fut>(
    state: &AppState,
    owner: KeyOwner,
    key: Option<IdempotencyKey>,
    method: &Method,
    path: &str,
    body: &Map<String, Value>,
    run: F,
) -> Response
where
    F: FnOnce(ReservedIds) -> Fut,
    Fut: Future<Output = Response>,
{
    execute_with(
        state,
        IdempotencyOptions::default(),
        owner,
        key,
        method,
        path,
        body,
        run,
    )
    .await
}

/// [`execute`] with explicit options (tests use a short lock).
#[allow(clippy::too_many_arguments)]
pub async fn execute_with<F, Fut>(
    state: &AppState,
    options: IdempotencyOptions,
    owner: KeyOwner,
    key: Option<IdempotencyKey>,
    method: &Method,
    path: &str,
    body: &Map<String, Value>,
    run: F,
) -> Response
where
    F: FnOnce(ReservedIds) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(key) = key else {
        return run(ReservedIds::fresh()).await;
    };
    let repo = state.store.idempotency();
    let request = Request {
        project: owner.project,
        hash: key.address(owner.key_type),
        key: &key,
        fingerprint: fingerprint(method, path, body),
        method,
        path,
    };
    let (record, version) = match claim(&repo, &request, options).await {
        Ok(Claim::Run { record, version }) => (record, version),
        Ok(Claim::Answer(response)) => return response,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ids = match ReservedIds::of(&record) {
        Ok(ids) => ids,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A panic is a 5xx of this attempt: the key becomes retryable rather than staying locked.
    let response = AssertUnwindSafe(run(ids))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| crate::pipeline::panicked(panic.as_ref()).into_response());
    settle(&repo, &request, record, version, response).await
}

/// One request with a key.
struct Request<'r> {
    project: Uuid,
    key: &'r IdempotencyKey,
    hash: String,
    fingerprint: String,
    method: &'r Method,
    path: &'r str,
}

enum Claim {
    /// The key is ours at `version`: run the request.
    Run {
        record: IdempotencyRecord,
        version: u64,
    },
    /// Answer without running: a replay or a 409.
    Answer(Response),
}

async fn claim(
    repo: &Idempotency<'_>,
    request: &Request<'_>,
    options: IdempotencyOptions,
) -> Result<Claim, StoreError> {
    let lock_ms = i64::try_from(options.lock.as_millis()).unwrap_or(i64::MAX);
    for _ in 0..MAX_CLAIM_ATTEMPTS {
        let now = Timestamp::now();
        let in_progress = IdempotencyState::InProgress {
            lock_until_ms: now.unix_millis().saturating_add(lock_ms),
        };
        match repo.get(request.project, &request.hash).await? {
            None => {
                let record = IdempotencyRecord {
                    key: request.key.as_str().to_owned(),
                    fingerprint: request.fingerprint.clone(),
                    method: request.method.as_str().to_owned(),
                    path: request.path.to_owned(),
                    first_used_at: now,
                    seed: hex(&random_seed()),
                    attempts: 1,
                    state: in_progress,
                };
                if let Some(version) = repo.create(request.project, &request.hash, &record).await? {
                    return Ok(Claim::Run { record, version });
                }
            }
            Some((mut record, version)) => {
                if record.fingerprint != request.fingerprint {
                    return Ok(Claim::Answer(reused(&record)));
                }
                match &record.state {
                    IdempotencyState::Completed(stored) => {
                        return Ok(Claim::Answer(replay(stored)))
                    }
                    IdempotencyState::InProgress { lock_until_ms }
                        if *lock_until_ms > now.unix_millis() =>
                    {
                        return Ok(Claim::Answer(in_progress_error()));
                    }
                    // Retryable after a 5xx, or a dead attempt's lock ran out: take it over.
                    IdempotencyState::InProgress { .. } | IdempotencyState::Retryable => {
                        record.state = in_progress;
                        record.attempts = record.attempts.saturating_add(1);
                        if let Some(version) = repo
                            .replace(request.project, &request.hash, &record, version)
                            .await?
                        {
                            return Ok(Claim::Run { record, version });
                        }
                    }
                }
            }
        }
        // Lost a race with another request for this key: look again.
    }
    Ok(Claim::Answer(in_progress_error()))
}

/// Records how the attempt ended and hands its response on. Store failures here are logged, not
/// returned: the attempt's effects already happened and the caller should learn about them.
async fn settle(
    repo: &Idempotency<'_>,
    request: &Request<'_>,
    record: IdempotencyRecord,
    version: u64,
    response: Response,
) -> Response {
    let status = response.status();
    if status.is_client_error() {
        match repo.release(request.project, &request.hash, version).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("idempotency record changed during the request"),
            Err(e) => tracing::warn!(error = %e, "could not release an idempotency key"),
        }
        return response;
    }
    if !status.is_success() {
        mark_retryable(repo, request, record, version).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            mark_retryable(repo, request, record, version).await;
            return ApiError::internal(&e).into_response();
        }
    };
    if bytes.len() > MAX_STORED_BODY_BYTES {
        tracing::warn!(
            bytes = bytes.len(),
            "large response stored for idempotent replay"
        );
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let completed = IdempotencyRecord {
        state: IdempotencyState::Completed(StoredResponse {
            status: status.as_u16(),
            content_type,
            body: bytes.to_vec(),
        }),
        ..record.clone()
    };
    match repo
        .replace(request.project, &request.hash, &completed, version)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => tracing::warn!("idempotency record changed during the request"),
        Err(e) => {
            tracing::warn!(error = %e, "could not store a response for idempotent replay");
            mark_retryable(repo, request, record, version).await;
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn mark_retryable(
    repo: &Idempotency<'_>,
    request: &Request<'_>,
    mut record: IdempotencyRecord,
    version: u64,
) {
    record.state = IdempotencyState::Retryable;
    match repo
        .replace(request.project, &request.hash, &record, version)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => tracing::warn!("idempotency record changed during the request"),
        // The lock still expires, after which a retry takes over.
        Err(e) => tracing::warn!(error = %e, "could not mark an idempotency key retryable"),
    }
}

/// The stored response again, marked as a replay. Request id and rate-limit headers are added
/// by the outer layers, as for any response.
fn replay(stored: &StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body.clone()).into_response();
    let content_type = stored
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or_else(|| HeaderValue::from_static(JSON_UTF8));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

fn reused(record: &IdempotencyRecord) -> Response {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "This Idempotency-Key was already used for a different request",
    )
    .with_details(json!({
        "key": record.key,
        "originalRequest": format!("{} {}", record.method, record.path),
        "originalRequestAt": record.first_used_at,
    }))
    .into_response()
}

fn in_progress_error() -> Response {
    ApiError::new(
        ErrorCode::IdempotencyKeyInProgress,
        "A request with this Idempotency-Key is still in progress",
    )
    .with_retry_after(1)
    .into_response()
}

/// Hex SHA-256 over the method, the path and the canonical JSON of the body, separated by
/// newlines (which neither a method nor a path contains).
pub fn fingerprint(method: &Method, path: &str, body: &Map<String, Value>) -> String {
    let mut canonical = String::new();
    write_object(body, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex(&hasher.finalize())
}

/// The canonical JSON text of a value: object members sorted by code point at
/// every depth, no insignificant whitespace, strings and numbers re-serialised.
///
/// - Strings are written the way serde_json writes them: `"` and `\` escaped, control
///   characters as `\n`, `\t`, … or `\u00XX`, everything else (including non-ASCII and `/`)
///   literally. So `"\u00e9"` and `"é"` are the same string, as are `"\/"` and `"/"`.
/// - Numbers are re-serialised in their shortest exact form, whatever way they were written: a
///   value with no fractional part prints as an integer (`1`, `1.0`, `1.00`, `1e0` → `1`; `1e2`
///   and `100` → `100`; `-0` → `0`), any other in its shortest round-trip form (`1.50` → `1.5`,
///   `1.5e-7` → `1.5e-7`). So the same number retried in another spelling is the same request.
///   (A handler that wants an integer may still refuse `1.0`: a 4xx releases the key, so the
///   retry with `1` runs.) Integral values of 10^21 and more keep the round-trip form.
///
/// Sorting by UTF-8 bytes is sorting by code point.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => write_number(n, out),
        // serde_json's compact form: escaped strings.
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The shortest exact form of a number (see [`canonical_json`]).
fn write_number(n: &serde_json::Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    match n.as_f64() {
        // Every f64 below 10^21 with no fraction is an integer `{:.0}` prints exactly.
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => {
            let text = format!("{f:.0}");
            out.push_str(if text == "-0" { "0" } else { &text });
        }
        _ => out.push_str(&n.to_string()),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(name.clone()).to_string());
        out.push(':');
        write_value(value, out);
    }
    out.push('}');
}

fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    seed
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or_default() as u8;
                Some((digit(*hi) << 4) | digit(*lo))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        canonical_json(&serde_json::from_str(text).unwrap())
    }

    fn object(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn members_are_sorted_by_code_point_at_every_depth() {
        assert_eq!(
            canon(
                r#"{ "b": 1, "a": { "z": [ {"y": 2, "x": 1} ], "B": null }, "é": true, "Z": "" }"#
            ),
            r#"{"Z":"","a":{"B":null,"z":[{"x":1,"y":2}]},"b":1,"é":true}"#
        );
        // Code point order, not UTF-16 order: U+FF5E sorts before U+1F600.
        assert_eq!(canon(r#"{"😀": 1, "～": 2}"#), "{\"～\":2,\"😀\":1}");
    }

    #[test]
    fn insignificant_whitespace_is_dropped_and_array_order_kept() {
        assert_eq!(
            canon("{\n  \"a\" : [ 3 , 1 , 2 ] ,\t\"b\" : \" x \" }"),
            r#"{"a":[3,1,2],"b":" x "}"#
        );
        assert_eq!(canon("{}"), "{}");
        assert_eq!(canon(r#"{"a":[],"b":{}}"#), r#"{"a":[],"b":{}}"#);
    }

    #[test]
    fn strings_are_re_serialised_with_minimal_escapes() {
        assert_eq!(canon(r#"{"a":"\u00e9\/\u0041"}"#), r#"{"a":"é/A"}"#);
        assert_eq!(canon(r#"{"a":"é/A"}"#), r#"{"a":"é/A"}"#);
        assert_eq!(
            canon(r#"{"a":"q\"b\\n\n\u0001"}"#),
            r#"{"a":"q\"b\\n\n\u0001"}"#
        );
        assert_eq!(canon(r#"{"\u0062":1}"#), r#"{"b":1}"#);
    }

    #[test]
    fn numbers_take_their_shortest_exact_form_however_written() {
        assert_eq!(
            canon(r#"{"a":1.50,"b":1e2,"c":-5,"d":0.10,"e":-0,"f":-2.0,"g":1.5e-7,"h":1e300}"#),
            r#"{"a":1.5,"b":100,"c":-5,"d":0.1,"e":0,"f":-2,"g":1.5e-7,"h":1e+300}"#
        );
        assert_eq!(canon(r#"{"a":1.0}"#), canon(r#"{"a":1.00}"#));
        assert_eq!(canon(r#"{"a":1.0}"#), canon(r#"{"a":1e0}"#));
        assert_eq!(canon(r#"{"a":1.0}"#), canon(r#"{"a":1}"#));
        assert_eq!(canon(r#"{"n":100}"#), canon(r#"{"n":1e2}"#));
        assert_eq!(
            canon(r#"{"n":12345678901234567890}"#),
            r#"{"n":12345678901234567890}"#
        );
        assert_ne!(canon(r#"{"a":1.5}"#), canon(r#"{"a":1}"#));
        assert_eq!(
            canon(r#"{"a":18446744073709551615,"b":-9223372036854775808}"#),
            r#"{"a":18446744073709551615,"b":-9223372036854775808}"#
        );
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_canonical_body() {
        let a = object(r#"{"to":"a@x.io","data":{"b":1,"a":2}}"#);
        let reordered = object(r#"{ "data": {"a":2,"b":1}, "to": "a@x.io" }"#);
        let other = object(r#"{"to":"b@x.io","data":{"b":1,"a":2}}"#);
        let fp = fingerprint(&Method::POST, "/v1/send", &a);
        assert_eq!(fp.len(), 64);
        assert_eq!(fp, fingerprint(&Method::POST, "/v1/send", &reordered));
        assert_ne!(fp, fingerprint(&Method::POST, "/v1/send", &other));
        assert_ne!(fp, fingerprint(&Method::POST, "/v1/track", &a));
        assert_ne!(fp, fingerprint(&Method::PUT, "/v1/send", &a));
    }

    #[test]
    fn keys_are_one_to_256_printable_ascii_characters() {
        let ok = |raw: &[u8]| IdempotencyKey::parse(raw).is_ok();
        assert!(ok(b"a"));
        assert!(ok(b" spaces and ~!@# are fine "));
        assert!(ok("k".repeat(256).as_bytes()));
        assert!(!ok(b""));
        assert!(!ok("k".repeat(257).as_bytes()));
        assert!(!ok(b"tab\there"));
        assert!(!ok(b"del\x7f"));
        assert!(!ok("é".as_bytes()));
        let err = IdempotencyKey::parse(b"").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidIdempotencyKey);
    }

    #[test]
    fn keys_come_from_the_header_when_present() {
        let mut headers = HeaderMap::new();
        assert_eq!(IdempotencyKey::from_headers(&headers).unwrap(), None);
        headers.insert(&IDEMPOTENCY_KEY, HeaderValue::from_static("order-42"));
        let key = IdempotencyKey::from_headers(&headers).unwrap().unwrap();
        assert_eq!(key.as_str(), "order-42");
        assert_eq!(key.sha256_hex(), hex(&Sha256::digest(b"order-42")));
        headers.insert(&IDEMPOTENCY_KEY, HeaderValue::from_static(""));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }

    #[test]
    fn reserved_ids_are_deterministic_increasing_uuid_v7s() {
        let ids = ReservedIds::fresh();
        let again = ReservedIds {
            attempt: 2,
            ..ids.clone()
        };
        let mut previous: Option<Uuid> = None;
        for index in (0..2000).chain([1 << 20, (1 << 28) + 5, u32::MAX as usize]) {
            let id = ids.id(index);
            assert_eq!(id, again.id(index));
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, ids.millis);
            if let Some(previous) = previous {
                assert!(id > previous, "{index}");
                assert!(id.to_string() > previous.to_string());
            }
            previous = Some(id);
        }
        let other = ReservedIds::fresh();
        assert_ne!(ids.id(0), other.id(0));
    }

    #[test]
    fn reserved_ids_come_back_from_the_record() {
        let ids = ReservedIds::fresh();
        let record = IdempotencyRecord {
            key: "k".into(),
            fingerprint: String::new(),
            method: "POST".into(),
            path: "/v1/send".into(),
            first_used_at: Timestamp::from_millis(ids.millis as i64).unwrap(),
            seed: hex(&ids.seed),
            attempts: 3,
            state: IdempotencyState::Retryable,
        };
        let back = ReservedIds::of(&record).unwrap();
        assert_eq!(back.attempt(), 3);
        assert_eq!(back.id(7), ids.id(7));
        let corrupt = IdempotencyRecord {
            seed: "zz".into(),
            ..record
        };
        assert!(ReservedIds::of(&corrupt).is_err());
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("+f"), None);
    }
}
