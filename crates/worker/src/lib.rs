//! Background work of the platform, written once and run by Lambda handlers (SQS events,
//! EventBridge schedules) and by the local server's loops alike:
//!
//! - [`accept`]: the accept step every sender shares (checks, contacts, records, queueing).
//! - [`audience`]: evaluating a filter condition over a project's contacts, page by page.
//! - [`campaigns`]: campaign state changes, the fan-out and scheduled starts.
//! - [`pacing`]: the global send pace shared by every sender (the account's rate, with
//!   transactional mail first).
//! - [`send`]: turns one queued email into a sent (or visibly failed) one.
//! - [`scheduler`]: the every-minute tick that finds emails left behind.
//! - [`segments`]: DYNAMIC segment membership kept current (on every change, on timers, and
//!   by full passes worked in the tick).
//! - [`consumer`]: the receive loop the local server runs over the embedded queues.
//! - [`dispatch`]: counters and fan-out for every newly stored event.
//! - [`webhooks`]: webhook deliveries and their attempts.
//! - [`feedback`]: applies provider notifications (delivery, bounces, opens …) to emails.
//! - [`workflows`]: running workflows, step by step.

pub mod accept;
pub mod audience;
pub mod campaigns;
pub mod clock;
pub mod consumer;
pub mod dispatch;
pub mod feedback;
pub mod pacing;
pub mod render;
pub mod scheduler;
pub mod segments;
pub mod send;
pub mod webhooks;
pub mod workflows;
