//! Hosted pages (spec feedback-and-unsubscribe.md §4): `/unsubscribe/:token`,
//! `/subscribe/:token` and `/manage/:token`, reached from links and `List-Unsubscribe` headers in
//! sent mail. No API key: a signed token in the path names the contact (and the email, for
//! campaign attribution). Small HTML pages, never the JSON envelope.
//!
//! - [`routes`]: the six routes and what a POST changes.
//! - [`html`]: the page and the headers every page carries.
//! - [`i18n`]: the words, in en, de, fr, es, nl, pt and it.
//! - [`mask`]: the partially masked address the pages show.
//! - [`form`]: the bodies the pages accept (form fields, the RFC 8058 one-click body).
//! - [`limit`]: the per-source request limit.

pub mod form;
pub mod html;
pub mod i18n;
pub mod limit;
pub mod mask;
pub mod routes;

pub use routes::router;
