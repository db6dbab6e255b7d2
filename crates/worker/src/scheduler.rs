//! The scheduler tick, run every minute (EventBridge in AWS, a tokio interval locally). It reads
//! the partitions of emails accepted in earlier minutes (see `plunk_store::keys::email_content`)
//! so that nothing stays behind silently (spec events-and-emails.md §4):
//!
//! - 2 minutes after acceptance: a transactional or workflow email still `PENDING` (its queue
//!   message was lost, e.g. the process died between writing and queueing) is queued again;
//! - 16 minutes after: the same, and a `SENDING` claim older than 15 minutes ends as `FAILED`
//!   (`SEND_OUTCOME_UNKNOWN`) rather than risking a second send;
//! - 72 hours after: an email still `PENDING` ends as `FAILED` (`EXPIRED_IN_QUEUE`).
//!
//! It also works through pending `DELETE /events/:name` jobs, contact erasures, segment passes
//! and segment timers, and starts due campaigns.
//!
//! Campaign mail is queued by its fan-out, which keeps its own checkpoint; it is not re-queued
//! here, only expired.

use crate::accept::Acceptor;
use crate::campaigns::fanout::{FanoutReport, FanoutSettings};
use plunk_domain::email_record::{EmailStatus, SendClass, SourceType};
use plunk_domain::Timestamp;
use plunk_messaging::blob::NoBlobs;
use plunk_messaging::send_queues::{SendJob, SendQueues};
use plunk_store::keys;
use plunk_store::table::{Condition, Item, StoreError};
use plunk_store::Store;
use serde_json::json;
use std::sync::Arc;

/// Minutes after acceptance of the first re-queue check.
const REQUEUE_AFTER_MINUTES: i64 = 2;
/// Minutes after acceptance of the stale-claim check.
const STALE_CLAIM_MINUTES: i64 = 16;
use crate::send::STALE_CLAIM_MS;
/// Minutes after acceptance when a `PENDING` email expires.
const EXPIRY_MINUTES: i64 = 72 * 60;
/// Most items one tick examines for event-name deletions (a few seconds of work at most).
const EVENT_DELETION_BUDGET: usize = 20_000;
/// Most items one tick examines for contact erasures (25 deletes in flight at a time).
const CONTACT_ERASURE_BUDGET: usize = 5_000;
/// Contacts evaluated per tick for segment recounts and computations (about two seconds of
/// work at 100 contacts per page; a larger project's count goes on next tick).
const SEGMENT_BUDGET: usize = 20_000;
/// Segment timers handled per tick (a minute with more goes on next tick).
const SEGMENT_TIMER_BUDGET: usize = 20_000;
/// Most minutes one tick catches up on after an outage.
const MAX_CATCH_UP: i64 = 30;

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub minutes_swept: u32,
    pub requeued: u32,
    pub failed: u32,
    /// Events removed by pending `DELETE /events/:name` jobs.
    pub events_deleted: u32,
    /// Events and email records of deleted contacts removed.
    pub contact_history_erased: u32,
    /// Contacts evaluated for segment counts.
    pub segment_contacts_evaluated: u32,
    /// Segment counts finished and written.
    pub segment_counts_written: u32,
    /// Contacts re-evaluated because a time-relative segment condition crossed a boundary.
    pub segment_timers_fired: u32,
    /// Scheduled campaigns started (or cancelled by their pre-checks) in their minute.
    pub campaigns_started: u32,
    /// Campaign emails written by the fan-out.
    pub campaign_recipients: u32,
    /// Campaigns that became SENT.
    pub campaigns_completed: u32,
    /// Campaigns still reading their audience after the tick (worth topping up).
    pub campaigns_fanning: u32,
}

/// Runs ticks.
#[derive(Clone)]
pub struct Scheduler {
    pub store: Store,
    pub queues: SendQueues,
    /// How far ahead of the send rate campaign fan-outs run.
    pub fanout: FanoutSettings,
}

impl Scheduler {
    /// One tick at `now_ms` (Unix milliseconds).
    pub async fn tick(&self, now_ms: i64) -> Result<TickReport, StoreError> {
        let minute = now_ms.div_euclid(60_000);
        let state_key = keys::scheduler_state();
        let state = self.store.table().get(&state_key).await?;
        let last = state
            .as_ref()
            .and_then(|i| i.body["lastMinute"].as_i64())
            .unwrap_or(minute - 1);
        let mut report = TickReport::default();
        let first = (last + 1).max(minute - MAX_CATCH_UP);
        for m in first..=minute {
            self.sweep(m - REQUEUE_AFTER_MINUTES, now_ms, false, &mut report)
                .await?;
            self.sweep(m - STALE_CLAIM_MINUTES, now_ms, false, &mut report)
                .await?;
            self.sweep(m - EXPIRY_MINUTES, now_ms, true, &mut report)
                .await?;
            report.minutes_swept += 1;
        }
        let started = crate::campaigns::schedule::start_due_through(&self.store, minute).await?;
        report.campaigns_started = (started.started + started.cancelled) as u32;
        // `DELETE /events/:name` completes here, a bounded slice per tick.
        report.events_deleted = self
            .store
            .events()
            .work_deletions(EVENT_DELETION_BUDGET)
            .await? as u32;
        let erased = self
            .store
            .contact_erasure()
            .work(now_ms, CONTACT_ERASURE_BUDGET)
            .await?;
        report.contact_history_erased = (erased.events + erased.emails) as u32;
        let segments = self.segment_passes(now_ms).await?;
        report.segment_contacts_evaluated = segments.examined as u32;
        report.segment_counts_written = segments.finished as u32;
        let timers =
            crate::segments::timers::work(&self.store, now_ms, SEGMENT_TIMER_BUDGET).await?;
        report.segment_timers_fired = timers.fired as u32;
        let fanout = self.fan_out(now_ms).await?;
        report.campaign_recipients = fanout.recipients as u32;
        report.campaigns_completed = fanout.completed as u32;
        report.campaigns_fanning = fanout.fanning as u32;
        let version = state.as_ref().map_or(0, |i| i.version);
        let item = Item::new(state_key, json!({ "lastMinute": minute })).with_version(version + 1);
        let condition = if state.is_some() {
            Condition::VersionEquals(version)
        } else {
            Condition::NotExists
        };
        // Another tick raced this one: both did the same idempotent work.
        if let Err(e) = self.store.table().put(item, condition).await {
            if !e.is_condition_failed() {
                return Err(e);
            }
        }
        Ok(report)
    }

    /// One pass of the queued segment passes (the tick runs it; the local server also every few
    /// seconds, so a new segment is counted at once in `make dev`).
    pub async fn segment_passes(
        &self,
        now_ms: i64,
    ) -> Result<crate::segments::jobs::SegmentWork, StoreError> {
        crate::segments::jobs::work(&self.store, now_ms, SEGMENT_BUDGET).await
    }

    /// Repeats the fan-out pass every [`FanoutSettings::top_up_every`] while a campaign still
    /// reads its audience, until [`FanoutSettings::top_up_for`] after `started` (what an
    /// every-minute invocation does after its tick, so the campaigns need only a short lead
    /// waiting in the queue; the local server runs its passes on its own interval instead).
    /// Returns the sum of the passes.
    pub async fn top_up_fan_outs(
        &self,
        started: std::time::Instant,
        clock: &dyn crate::clock::Clock,
    ) -> Result<FanoutReport, StoreError> {
        let mut total = FanoutReport::default();
        loop {
            if started.elapsed() + self.fanout.top_up_every > self.fanout.top_up_for {
                return Ok(total);
            }
            tokio::time::sleep(self.fanout.top_up_every).await;
            let pass = self.fan_out(clock.now_ms()).await?;
            total.pages += pass.pages;
            total.recipients += pass.recipients;
            total.completed += pass.completed;
            total.cancelled += pass.cancelled;
            total.fanning = pass.fanning;
            if pass.fanning == 0 {
                return Ok(total);
            }
        }
    }

    /// One pass of the campaign fan-outs (the local server also runs it every few seconds).
    pub async fn fan_out(&self, now_ms: i64) -> Result<FanoutReport, StoreError> {
        let acceptor = Acceptor {
            store: self.store.clone(),
            // Campaign emails read their content from the campaign: nothing goes to blobs.
            blobs: Arc::new(NoBlobs),
            queues: self.queues.clone(),
        };
        crate::campaigns::fanout::work(&acceptor, &self.fanout, now_ms).await
    }

    async fn sweep(
        &self,
        minute: i64,
        now_ms: i64,
        expire: bool,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        let emails = self.store.emails();
        let mut jobs = Vec::new();
        let accepted = emails.accepted_in_minute(minute).await?;
        // Records read 100 at a time and eventually consistent: a record a second older than
        // the truth at worst queues a message the claim then ignores, or loses its version race.
        for chunk in accepted.chunks(100) {
            let ids: Vec<_> = chunk.iter().map(|f| (f.project_id, f.email_id)).collect();
            let records = emails.get_many_eventually(&ids).await?;
            for (found, record) in chunk.iter().zip(records) {
                let Some(mut v) = record else {
                    continue;
                };
                let failure = match v.record.status {
                    EmailStatus::Pending if expire => Some("EXPIRED_IN_QUEUE"),
                    EmailStatus::Sending
                        if v.record
                            .sending_at
                            .is_some_and(|at| now_ms - at.unix_millis() > STALE_CLAIM_MS) =>
                    {
                        Some("SEND_OUTCOME_UNKNOWN")
                    }
                    EmailStatus::Pending => {
                        let class = match v.record.source_type {
                            SourceType::Transactional => Some(SendClass::Transactional),
                            SourceType::Workflow => Some(SendClass::Workflow),
                            SourceType::Campaign => None,
                        };
                        if let Some(class) = class {
                            jobs.push(SendJob {
                                project_id: found.project_id,
                                email_id: found.email_id,
                                class,
                            });
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(error) = failure {
                    let now = Timestamp::now();
                    let before = v.record.clone();
                    v.record.fail(error, now);
                    match emails
                        .save(found.project_id, &before, &v.record, v.version)
                        .await
                    {
                        Ok(_) => {
                            report.failed += 1;
                            let event = v.record.event(
                                "email.failed",
                                json!({ "error": error, "attempts": v.record.attempts }),
                                now,
                            );
                            self.store.events().record(found.project_id, &event).await?;
                        }
                        Err(e) if e.is_condition_failed() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if !jobs.is_empty() {
            report.requeued += jobs.len() as u32;
            tracing::warn!(
                count = jobs.len(),
                minute,
                "re-queueing emails left PENDING"
            );
            self.queues
                .enqueue(&jobs)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}
