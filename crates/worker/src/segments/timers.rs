//! Segment timers, worked in the scheduler's tick: each due timer re-evaluates one contact
//! ([`super::membership::update`]) at the minute a time-relative filter of one of its
//! project's conditions crosses its boundary (`triggeredWithin 7 days` a week after the event,
//! `createdAt olderThan 30 days` a month after sign-up). Only those contacts are read, never a
//! whole project.
//!
//! Timers of minute `M` are all written before `M` begins (a boundary after `now` gets the
//! first minute at or after it), so the tick of `M` finds them all. Progress (minute, shard,
//! position) is saved after every page: a crash repeats at most a page, and a minute with more
//! timers than one tick's budget goes on in the next tick.

use super::membership;
use plunk_store::keys::SEGMENT_TIMER_SHARDS;
use plunk_store::repo::memberships::TimersProgress;
use plunk_store::table::StoreError;
use plunk_store::Store;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Timers read per page.
const PAGE: usize = 100;
/// Minutes a tick goes back after an outage (timer items live two days).
const MAX_CATCH_UP_MINUTES: i64 = 24 * 60;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimerWork {
    /// Due timers handled.
    pub fired: usize,
    /// Entry and exit events they caused.
    pub events: usize,
    /// Memberships they changed.
    pub moved: usize,
    /// The first minute not yet fully worked.
    pub through_minute: i64,
}

/// Works the timers due up to `now_ms`, handling about `budget` of them.
pub async fn work(store: &Store, now_ms: i64, budget: usize) -> Result<TimerWork, StoreError> {
    let memberships = store.memberships();
    let minute = now_ms.div_euclid(60_000);
    let (mut progress, mut version) = match memberships.timers_progress().await? {
        Some((progress, version)) => (progress, Some(version)),
        None => (
            TimersProgress {
                minute,
                shard: 0,
                position: None,
                worked_at_ms: now_ms,
            },
            None,
        ),
    };
    if progress.minute < minute - MAX_CATCH_UP_MINUTES {
        tracing::warn!(
            from = progress.minute,
            to = minute - MAX_CATCH_UP_MINUTES,
            "segment timers skipped after a long outage"
        );
        progress = TimersProgress {
            minute: minute - MAX_CATCH_UP_MINUTES,
            shard: 0,
            position: None,
            worked_at_ms: now_ms,
        };
    }
    let mut work = TimerWork::default();
    let mut unsaved = false;
    progress.worked_at_ms = now_ms;
    while progress.minute <= minute && work.fired < budget {
        let (timers, next) = memberships
            .due_timers(
                progress.minute,
                progress.shard,
                progress.position.clone(),
                PAGE,
            )
            .await?;
        let mut by_project: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for timer in &timers {
            by_project
                .entry(timer.project)
                .or_default()
                .push(timer.contact);
        }
        for (project, contacts) in by_project {
            // Named by the page: a tick repeating it after a crash counts its moves once.
            let batch = membership::Batch::new(
                &[
                    b"timers",
                    &progress.minute.to_be_bytes(),
                    &progress.shard.to_be_bytes(),
                    contacts[0].as_bytes(),
                ],
                now_ms,
            );
            let outcome = membership::update(store, project, &[], &contacts, &batch).await?;
            work.events += outcome.events;
            work.moved += outcome.moved;
        }
        work.fired += timers.len();
        match next {
            Some(position) => progress.position = Some(position),
            None => {
                progress.position = None;
                progress.shard += 1;
                if progress.shard == SEGMENT_TIMER_SHARDS {
                    progress.shard = 0;
                    progress.minute += 1;
                }
            }
        }
        unsaved = true;
        // Saved after each page that did work; empty shards are saved with the next (reading
        // them again after a crash costs a query, not a second evaluation).
        if !timers.is_empty() {
            if !memberships.save_timers_progress(&progress, version).await? {
                // Another tick is working the timers: it goes on from here.
                work.through_minute = progress.minute;
                return Ok(work);
            }
            version = Some(version.map_or(1, |v| v + 1));
            unsaved = false;
        }
    }
    if unsaved {
        memberships.save_timers_progress(&progress, version).await?;
    }
    work.through_minute = progress.minute;
    Ok(work)
}
