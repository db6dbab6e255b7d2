//! Wall-clock time in milliseconds, and sleeping until a given time. The pacing state is shared
//! by processes on different machines, so it is kept in Unix milliseconds; tests and the pacing
//! benchmark substitute a clock driven by tokio's paused time.

use async_trait::async_trait;

/// A source of Unix time in milliseconds that can wait.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
    /// Returns at or after `at_ms`.
    async fn sleep_until_ms(&self, at_ms: i64);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }

    async fn sleep_until_ms(&self, at_ms: i64) {
        let wait = at_ms - self.now_ms();
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    }
}

/// A clock that starts at `epoch_ms` and advances with tokio's clock, so a paused runtime
/// (`tokio::time::pause`) simulates hours in moments.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now.
    pub fn starting_at(epoch_ms: i64) -> Self {
        Self {
            epoch_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.epoch_ms + self.start.elapsed().as_millis() as i64
    }

    async fn sleep_until_ms(&self, at_ms: i64) {
        let at =
            self.start + std::time::Duration::from_millis((at_ms - self.epoch_ms).max(0) as u64);
        tokio::time::sleep_until(at).await;
    }
}
