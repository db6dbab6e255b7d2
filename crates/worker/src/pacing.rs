//! The global send pace (spec README §7, ARCHITECTURE §5): every sender, in every process,
//! reserves send slots from one shared "next free slot" time — the generic cell rate algorithm.
//! Slots are `1/rate` apart, so no one-second window ever holds more than `rate` sends, and a
//! sender that reserved a slot waits until its time before calling the provider.
//!
//! Priority: lower classes may only reserve while the next free slot is close to now
//! (campaign mail within 0.25 s, workflow mail within 0.35 s); transactional mail may reserve any
//! slot. So a backlog of campaign mail keeps the schedule at most a quarter second ahead, a
//! transactional email waits little longer than that, and while transactional mail is waiting
//! the schedule runs ahead and lower classes hold back entirely.
//!
//! A batch handled at once (an SQS event) announces its messages ([`Pacer::expect`]); the first
//! of them to reserve then takes slots for the rest in the same write (one read and one write of
//! the pace item per batch instead of per email), and the others take those slots from this
//! process.
//! A slot is used only while its time has not yet come, so the spacing holds; a slot nobody
//! takes is simply a send slot left unused.

use crate::clock::Clock;
use async_trait::async_trait;
use plunk_domain::email_record::SendClass;
use plunk_store::keys;
use plunk_store::table::{Condition, Item, StoreError, Table};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Default account rate when the provider does not say (SES sandbox: 14/s).
pub const DEFAULT_RATE: f64 = 14.0;
/// Fraction of the account rate the pace uses (see [`Pacer::new`]).
pub const PACE_MARGIN: f64 = 0.98;
/// Most slots one [`Pacer::take`] reserves at once: an SQS event source's batch.
const MAX_BATCH: usize = 10;

/// Where the next free slot time lives, with optimistic concurrency.
#[async_trait]
pub trait PaceState: Send + Sync + 'static {
    /// The next free slot (Unix microseconds) and the version it was read at.
    async fn load(&self) -> Result<(i64, u64), StoreError>;
    /// Stores `next_free_us` if the state is still at `version`; false when another sender won.
    async fn store(&self, next_free_us: i64, version: u64) -> Result<bool, StoreError>;
}

/// The pace in the shared table: one item, updated with a version condition.
pub struct TablePace {
    table: Arc<dyn Table>,
}

impl TablePace {
    /// Pace state in `table`.
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl PaceState for TablePace {
    async fn load(&self) -> Result<(i64, u64), StoreError> {
        Ok(match self.table.get(&keys::pacing_state()).await? {
            Some(item) => (item.body["nextFreeUs"].as_i64().unwrap_or(0), item.version),
            None => (0, 0),
        })
    }

    async fn store(&self, next_free_us: i64, version: u64) -> Result<bool, StoreError> {
        let item = Item::new(keys::pacing_state(), json!({ "nextFreeUs": next_free_us }))
            .with_version(version + 1);
        let condition = if version == 0 {
            Condition::NotExists
        } else {
            Condition::VersionEquals(version)
        };
        match self.table.put(item, condition).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The pace in memory, for one process (benchmarks and tests).
#[derive(Debug, Default)]
pub struct MemoryPace {
    state: Mutex<(i64, u64)>,
}

#[async_trait]
impl PaceState for MemoryPace {
    async fn load(&self) -> Result<(i64, u64), StoreError> {
        Ok(*self
            .state
            .lock()
            .map_err(|_| StoreError::Other("poisoned".into()))?)
    }

    async fn store(&self, next_free_us: i64, version: u64) -> Result<bool, StoreError> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| StoreError::Other("poisoned".into()))?;
        if s.1 != version {
            return Ok(false);
        }
        *s = (next_free_us, version + 1);
        Ok(true)
    }
}

/// Reserves send slots at the account's rate.
#[derive(Clone)]
pub struct Pacer {
    state: Arc<dyn PaceState>,
    clock: Arc<dyn Clock>,
    interval_us: f64,
    /// Per class, slots this process reserved for announced messages. A class's lock is held
    /// across its reservation, so concurrent senders of one batch reserve once.
    spares: Arc<[tokio::sync::Mutex<Spares>; 3]>,
}

/// Slots of one class reserved ahead for announced messages, and how many are announced.
#[derive(Debug, Default)]
struct Spares {
    slots: std::collections::VecDeque<i64>,
    announced: usize,
}

/// How far ahead of now a class may reserve (microseconds).
fn horizon_us(class: SendClass) -> i64 {
    match class {
        SendClass::Transactional => i64::MAX / 4,
        SendClass::Workflow => 350_000,
        SendClass::Campaign => 250_000,
    }
}

impl Pacer {
    /// A pacer at `rate` sends per second over `state`. Slots are spaced 2% wider than
    /// `1/rate`: the hand-off to the provider happens a few milliseconds after a slot, and that
    /// delay varies, so exact spacing would put one send too many inside some one-second window
    /// whenever one hand-off runs later than the one `rate` slots on. The margin absorbs up to
    /// 20 ms of such jitter at 14/s.
    pub fn new(state: Arc<dyn PaceState>, clock: Arc<dyn Clock>, rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            DEFAULT_RATE
        };
        Self {
            state,
            clock,
            interval_us: 1_000_000.0 / (rate * PACE_MARGIN),
            spares: Arc::new(Default::default()),
        }
    }

    /// Announces `n` messages of `class` just received by this process, each of which will
    /// [`Pacer::take`] a slot unless it needs none. Replaces the previous announcement.
    pub async fn expect(&self, class: SendClass, n: usize) {
        self.spares[class.rank()].lock().await.announced = n;
    }

    /// One slot for `class`: a spare one reserved for this process's announced messages while
    /// its time has not passed, else a new reservation that also covers the messages still
    /// announced.
    pub async fn take(&self, class: SendClass) -> Result<i64, StoreError> {
        let mut spares = self.spares[class.rank()].lock().await;
        spares.announced = spares.announced.saturating_sub(1);
        // A spare whose time has passed is dropped, not used: sending after one's slot would
        // crowd the sends of the slots after it. So every slot, spare or new, is still ahead
        // when taken, as a slot reserved on the spot is.
        let now_us = self.clock.now_ms() * 1000;
        while let Some(slot) = spares.slots.pop_front() {
            if slot >= now_us {
                return Ok(slot);
            }
        }
        let n = (1 + spares.announced).min(MAX_BATCH);
        let mut slots = self.reserve(class, n).await?;
        let first = slots.remove(0);
        spares.slots.extend(slots);
        Ok(first)
    }

    /// The clock the pacer reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Reserves up to `n` consecutive slots for `class`, waiting while the schedule is too far
    /// ahead for that class: all `n` for transactional mail, for lower classes as many as end
    /// within their horizon (at least one), so a batch of campaign mail never puts the schedule
    /// further ahead than a single campaign email may. Returns the slot times (Unix
    /// microseconds), earliest first.
    pub async fn reserve(&self, class: SendClass, n: usize) -> Result<Vec<i64>, StoreError> {
        loop {
            let (next_free, version) = self.state.load().await?;
            let now = self.clock.now_ms() * 1000;
            let start = next_free.max(now);
            let ahead = start - now;
            let horizon = horizon_us(class);
            if ahead > horizon {
                // Wait until the schedule is back within reach (at least 5 ms, to bound polling).
                let wake_ms = (start - horizon) / 1000;
                self.clock
                    .sleep_until_ms(wake_ms.max(self.clock.now_ms() + 5))
                    .await;
                continue;
            }
            let n = match class {
                SendClass::Transactional => n.max(1),
                _ => n.clamp(
                    1,
                    1 + ((horizon - ahead) as f64 / self.interval_us) as usize,
                ),
            };
            let end = start + (self.interval_us * n as f64).round() as i64;
            if self.state.store(end, version).await? {
                return Ok((0..n)
                    .map(|i| start + (self.interval_us * i as f64).round() as i64)
                    .collect());
            }
        }
    }

    /// Waits until a reserved slot time.
    pub async fn wait_for(&self, slot_us: i64) {
        self.clock
            .sleep_until_ms((slot_us + 999).div_euclid(1000))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate() {
        let clock = Arc::new(TokioClock::starting_at(1_000_000));
        let pacer = Pacer::new(
            Arc::new(MemoryPace::default()),
            clock.clone(),
            10.0 / PACE_MARGIN,
        );
        let slots = pacer.reserve(SendClass::Transactional, 3).await.unwrap();
        assert_eq!(slots, vec![1_000_000_000, 1_000_100_000, 1_000_200_000]);
        let more = pacer.reserve(SendClass::Transactional, 1).await.unwrap();
        assert_eq!(more, vec![1_000_300_000]);
    }

    /// Counts the pace item's writes.
    #[derive(Default)]
    struct CountingPace {
        inner: MemoryPace,
        stores: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl PaceState for CountingPace {
        async fn load(&self) -> Result<(i64, u64), StoreError> {
            self.inner.load().await
        }
        async fn store(&self, next_free_us: i64, version: u64) -> Result<bool, StoreError> {
            self.stores
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.store(next_free_us, version).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_announced_batch_reserves_once_and_its_slots_stay_spaced() {
        let clock = Arc::new(TokioClock::starting_at(1_000_000));
        let pace = Arc::new(CountingPace::default());
        let (a, b) = (
            Pacer::new(pace.clone(), clock.clone(), 10.0 / PACE_MARGIN),
            Pacer::new(pace.clone(), clock.clone(), 10.0 / PACE_MARGIN),
        );
        a.expect(SendClass::Transactional, 4).await;
        let mut handles = Vec::new();
        for _ in 0..4 {
            let a = a.clone();
            handles.push(tokio::spawn(async move {
                a.take(SendClass::Transactional).await.unwrap()
            }));
        }
        let mut slots = Vec::new();
        for h in handles {
            slots.push(h.await.unwrap());
        }
        slots.sort_unstable();
        assert_eq!(
            slots,
            vec![1_000_000_000, 1_000_100_000, 1_000_200_000, 1_000_300_000]
        );
        assert_eq!(pace.stores.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another process gets the next slot, not one of these.
        assert_eq!(
            b.take(SendClass::Transactional).await.unwrap(),
            1_000_400_000
        );

        // Spares whose time has passed are dropped, not used late.
        a.expect(SendClass::Transactional, 3).await;
        let first = a.take(SendClass::Transactional).await.unwrap();
        assert_eq!(first, 1_000_500_000);
        clock.sleep_until_ms(1_000_800).await;
        let late = a.take(SendClass::Transactional).await.unwrap();
        assert!(
            late >= 1_000_800_000,
            "a fresh slot, not a passed spare: {late}"
        );
        assert_eq!(pace.stores.load(std::sync::atomic::Ordering::SeqCst), 4);

        // A campaign batch reserves only the slots that end within its horizon (0.25 s): its
        // last slot is no further ahead than a single campaign email may reserve.
        clock.sleep_until_ms(1_002_000).await; // the schedule has caught up with now
        a.expect(SendClass::Campaign, 10).await;
        let slot = a.take(SendClass::Campaign).await.unwrap();
        let now_us = clock.now_ms() * 1000;
        let last = pace.inner.load().await.unwrap().0 - 100_000;
        assert!(
            last - now_us <= 250_000,
            "last slot {} µs ahead",
            last - now_us
        );
        assert_eq!(
            (last - slot) / 100_000,
            2,
            "three slots: 0, 0.1 and 0.2 s ahead"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn campaign_mail_waits_while_the_schedule_is_far_ahead() {
        let clock = Arc::new(TokioClock::starting_at(0));
        let pacer = Pacer::new(
            Arc::new(MemoryPace::default()),
            clock.clone(),
            10.0 / PACE_MARGIN,
        );
        // Twenty transactional slots push the schedule two seconds ahead.
        pacer.reserve(SendClass::Transactional, 20).await.unwrap();
        let slot = pacer.reserve(SendClass::Campaign, 1).await.unwrap()[0];
        assert_eq!(slot, 2_000_000);
        assert!(
            clock.now_ms() >= 1_750,
            "campaign reserved only within its 0.25 s horizon"
        );
    }
}
