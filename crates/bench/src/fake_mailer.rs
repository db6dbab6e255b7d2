//! A mailer that records every hand-off (which email, when) and then either answers with a made-up
//! message id or delegates to a real mailer (the outbox, in the wall-clock pacing run).

use async_trait::async_trait;
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

/// One call: the email and the time it reached the mailer (µs after the mailer was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOff {
    pub email_id: Uuid,
    pub at_us: i64,
}

/// Records calls, then answers `Ok` or asks `inner`.
pub struct RecordingMailer {
    inner: Option<Arc<dyn Mailer>>,
    start: Instant,
    calls: Mutex<Vec<HandOff>>,
    next_id: AtomicU64,
}

impl RecordingMailer {
    /// Accepts every message with a made-up id.
    pub fn accepting() -> Self {
        Self::new(None)
    }

    /// Records, then delegates to `inner`.
    pub fn wrapping(inner: Arc<dyn Mailer>) -> Self {
        Self::new(Some(inner))
    }

    fn new(inner: Option<Arc<dyn Mailer>>) -> Self {
        Self {
            inner,
            start: Instant::now(),
            calls: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// When the mailer was made: the zero of `HandOff::at_us`.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Every call so far, in call order.
    pub fn calls(&self) -> Vec<HandOff> {
        self.calls.lock().expect("calls").clone()
    }

    /// How many calls so far.
    pub fn count(&self) -> usize {
        self.calls.lock().expect("calls").len()
    }

    /// Calls per email id.
    pub fn per_email(&self) -> HashMap<Uuid, usize> {
        let mut out = HashMap::new();
        for c in self.calls.lock().expect("calls").iter() {
            *out.entry(c.email_id).or_insert(0) += 1;
        }
        out
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let at_us = self.start.elapsed().as_micros() as i64;
        self.calls.lock().expect("calls").push(HandOff {
            email_id: email.email_id,
            at_us,
        });
        match &self.inner {
            Some(inner) => inner.send(email).await,
            None => Ok(format!(
                "fake-{}",
                self.next_id.fetch_add(1, Ordering::Relaxed)
            )),
        }
    }
}
