//! Benchmarks behind `make bench` (`infra/scripts/bench.sh`, documented in `docs/benchmarks.md`).
//!
//! Binaries:
//! - `upsert-hot-path`: the whole HTTP router in process (no sockets) over the embedded SQLite
//!   store in a temporary file, one `POST /contacts` at a time — creating new contacts, then
//!   updating existing ones (data merge) — and the same two phases straight on the store
//!   (`Store::contacts().upsert`), with latency percentiles and throughput per phase.
//!
//! - `pacing`: the global send pace on a simulated clock (1–8 consumers, a campaign backlog and
//!   transactional arrivals), then the real router, worker and consumer loop on the wall clock.
//! - `faults`: thousands of randomised fault schedules around the send worker (duplicates, crashes,
//!   provider and store errors); counts duplicate hand-offs and lost emails.
//! - `send-cost`: request units, queue requests and provider calls per email, priced in dollars.
//! - `send-accept`: `POST /v1/send` latency in process.
//! - `template-fuzz`: generated templates and data through the syntax check and every render;
//!   counts panics (must be 0) and prints the slowest render.
//! - `workflow-timers`: workflow executions waiting on a DELAY that ends in one minute, all
//!   advanced by that minute's tick; time and table units per advanced step.
//! - `workflow-faults`: randomised fault schedules over a workflow of every step type; counts
//!   steps run twice, emails queued twice and executions left unended (all must be 0).
//! - `workflow-latency`: against a running `plunk serve`, `/v1/track` to the first SEND_EMAIL's
//!   email in the outbox, p50/p99.
//!
//! The HTTP load test (many connections against `plunk serve`) is `wrk` driven by
//! `infra/bench/*.lua`; it needs no code here.
//!
//! Figures are printed, never asserted: they depend on the machine.

/// The allocator of the deployed binaries (`plunk_functions`, `plunk`), so the figures are theirs.
/// A benchmark binary that uses nothing else of this crate names it with `use plunk_bench as _;`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod fake_mailer;
pub mod fault_kit;
pub mod inproc;
pub mod metered;
pub mod prices;
pub mod seed;
pub mod stats;
pub mod template_fuzz;

use std::time::{Duration, Instant};

/// Latencies of one phase, measured one operation at a time.
#[derive(Debug)]
pub struct Phase {
    name: String,
    samples: Vec<Duration>,
    failures: usize,
    started: Instant,
    wall: Duration,
}

impl Phase {
    /// Starts a phase (its wall clock starts now).
    pub fn start(name: impl Into<String>, capacity: usize) -> Self {
        Self {
            name: name.into(),
            samples: Vec::with_capacity(capacity),
            failures: 0,
            started: Instant::now(),
            wall: Duration::ZERO,
        }
    }

    /// Records one operation's latency and whether it had the expected outcome.
    pub fn record(&mut self, latency: Duration, ok: bool) {
        self.samples.push(latency);
        if !ok {
            self.failures += 1;
        }
    }

    /// Stops the wall clock and sorts the samples.
    pub fn finish(mut self) -> Self {
        self.wall = self.started.elapsed();
        self.samples.sort_unstable();
        self
    }

    /// Operations with an unexpected outcome (non-2xx, wrong status, store error).
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// The `q`-th percentile (0–100) by nearest rank on the sorted samples.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q / 100.0) * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }

    /// Operations per second over the phase's wall clock.
    pub fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Prints finished phases as an aligned table (latencies in microseconds).
pub fn print_table(phases: &[Phase]) {
    let width = phases
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>6}",
        "phase", "count", "p50 µs", "p90 µs", "p99 µs", "max µs", "req/s", "errors"
    );
    for p in phases {
        println!(
            "{:<width$}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9.0}  {:>6}",
            p.name,
            p.samples.len(),
            micros(p.percentile(50.0)),
            micros(p.percentile(90.0)),
            micros(p.percentile(99.0)),
            micros(p.samples.last().copied().unwrap_or_default()),
            p.per_second(),
            p.failures,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut p = Phase::start("t", 100);
        for i in 1..=100 {
            p.record(Duration::from_micros(i), true);
        }
        let p = p.finish();
        assert_eq!(p.percentile(50.0), Duration::from_micros(50));
        assert_eq!(p.percentile(99.0), Duration::from_micros(99));
        assert_eq!(p.percentile(100.0), Duration::from_micros(100));
        assert_eq!(p.percentile(0.0), Duration::from_micros(1));
    }
}
