//! Outgoing webhooks: the pure rules and the one network step. The API, the
//! store and the queue wiring live elsewhere and build on these modules.
//!
//! - [`secret`]: `whsec_` signing secrets;
//! - [`secret_box`]: signing secrets encrypted at rest;
//! - [`signature`]: Standard Webhooks signing and verification;
//! - [`patterns`]: event filter patterns;
//! - [`ssrf`]: which URLs and addresses may be called;
//! - [`delivery`]: one vetted outgoing HTTP call, and a signed delivery attempt made with it;
//! - [`schedule`]: when the next attempt is due;
//! - [`payload`]: the request body.

pub mod delivery;
pub mod patterns;
pub mod payload;
pub mod schedule;
pub mod secret;
pub mod secret_box;
pub mod signature;
pub mod ssrf;

pub use delivery::{
    attempt, call, AttemptOutcome, AttemptPolicy, AttemptRequest, HttpCall, Method, RequestBody,
};
pub use secret::WebhookSecret;
pub use secret_box::SecretBox;
pub use url::Url;
