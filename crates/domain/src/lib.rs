//! Pure rules of the email platform: ids, parsed newtypes, timestamps, field validation, the
//! contact `data` rules, projects and API keys. Nothing in this crate performs I/O.

pub mod campaign;
pub mod contact;
pub mod email;
pub mod email_record;
pub mod event;
pub mod feedback;
pub mod filter;
pub mod id;
pub mod language;
pub mod list_unsubscribe;
pub mod page_token;
pub mod panic;
pub mod project;
pub mod segment;
pub mod send_request;
pub mod sending_domain;
pub mod template;
pub mod time;
pub mod validation;
pub mod workflow;

pub use email::EmailAddress;
pub use time::Timestamp;
pub use validation::{FieldCode, FieldError};
