//! The shared HTTP kit: every endpoint answers through these pieces, so no handler builds a JSON
//! error by hand and every response carries the spec's headers.
//!
//! - [`error`]: every error code of spec README §11.2 as a typed [`ApiError`].
//! - [`envelope`]: the success envelope (`{success, data}`) with its status.
//! - [`pipeline`]: request ids, error rendering, 404/405, CORS for `/v1/*`, body size.
//! - [`auth`]: API keys, key types, rate limits and disabled projects (checks 5–8 of README §4).
//! - [`json`] and [`query`]: extractors that turn bad input into 400/422 errors.
//! - [`idempotency`]: `Idempotency-Key` replays for the endpoints of spec README §8.

pub mod auth;
pub mod envelope;
pub mod error;
pub mod idempotency;
pub mod json;
pub mod openapi;
pub mod pipeline;
pub mod query;
pub mod state;

pub use auth::{Access, AuthContext};
pub use envelope::Envelope;
pub use error::{ApiError, ErrorCode};
pub use json::JsonObject;
pub use query::QueryParams;
pub use state::{AppState, Settings};
