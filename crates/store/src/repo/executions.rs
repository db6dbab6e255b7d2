//! Workflow executions (workflows.md §4): one item per execution in its workflow's executions
//! partition (a `Gsi1` entry per status for the `status` filter), the records of the steps it
//! ran in a partition of their own, and the small items that keep the rules cheap:
//!
//! - an entry per (workflow, contact) with the contact's last execution, read by the re-entry
//!   rule;
//! - a counter of the workflow's active executions (`WORKFLOW_LOCKED`, `activeExecutions`);
//! - while an execution waits: a timer in the minute its DELAY or timeout ends, and for a
//!   WAIT_FOR_EVENT a wait under the contact keyed by the event name, so an event finds the
//!   executions waiting for it by one keyed query, never by scanning executions.
//!
//! Every change of an execution is one transaction conditional on the version that was read: a
//! step's record, the execution's new state, its timer and wait items and the active counter move
//! together, so a duplicated message or a second worker never records a step twice.

use crate::keys;
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::workflow::execution::{Execution, ExecutionStatus, StepExecution, Wait};
use serde_json::json;
use uuid::Uuid;

/// Timer items outlive their minute by two days (the scheduler catches up at most a day).
const TIMER_TTL_SECONDS: i64 = 2 * 24 * 3600;

/// Why an execution was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStarted {
    /// This event already started an execution of the workflow.
    Duplicate,
    /// The contact is in the workflow, or was and may not enter again.
    Reentry,
}

/// A due timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimer {
    pub project: Uuid,
    pub workflow: Uuid,
    pub execution: Uuid,
}

/// An execution waiting for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub workflow: Uuid,
    pub execution: Uuid,
}

/// One page of executions.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    pub items: Vec<Execution>,
    pub next: Option<Position>,
}

/// Execution operations of one table.
pub struct Executions<'a> {
    table: &'a dyn Table,
}

fn execution_item(project: Uuid, execution: &Execution, version: u64) -> Item {
    Item::new(
        keys::workflow_execution(project, execution.workflow_id, execution.id),
        crate::encode(execution),
    )
    .with_gsi1(
        keys::workflow_executions_by_status_index(
            project,
            execution.workflow_id,
            execution.status.as_str(),
        ),
        execution.id.to_string(),
    )
    .with_version(version)
}

fn put(item: Item) -> WriteOp {
    WriteOp::Put {
        item,
        condition: Condition::None,
    }
}

/// Minutes after its last change at which a RUNNING execution is queued again: its message was
/// lost or its worker died (a healthy run saves every step, moving this timer on).
pub const WATCHDOG_MINUTES: i64 = 5;

/// The items an active execution keeps: a waiting one its timer and, for an event, its wait
/// under the contact; a running one a watchdog timer, so nothing stays RUNNING silently.
fn wait_items(project: Uuid, execution: &Execution) -> Vec<Item> {
    let Some(wait) = &execution.wait else {
        if execution.status == ExecutionStatus::Running {
            let minute = execution.updated_at.unix_seconds().div_euclid(60) + WATCHDOG_MINUTES;
            return vec![Item::new(
                keys::workflow_timer(minute, project, execution.id),
                json!({"workflowId": execution.workflow_id, "watchdog": true}),
            )
            .with_ttl(minute * 60 + TIMER_TTL_SECONDS)];
        }
        return Vec::new();
    };
    let mut items = Vec::new();
    if let Some(due) = wait.due_ms() {
        let minute = due.div_euclid(60_000);
        items.push(
            Item::new(
                keys::workflow_timer(minute, project, execution.id),
                json!({"workflowId": execution.workflow_id, "dueMs": due}),
            )
            .with_ttl(minute * 60 + TIMER_TTL_SECONDS),
        );
    }
    if let Wait::Event { event_name, .. } = wait {
        items.push(Item::new(
            keys::contact_wait(project, execution.contact_id, event_name, execution.id),
            json!({"workflowId": execution.workflow_id}),
        ));
    }
    items
}

impl<'a> Executions<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Starts `execution` (RUNNING at the TRIGGER step) unless the event already started one
    /// (the id is derived from the event) or the re-entry rule refuses the contact: without
    /// `allow_reentry` a contact enters once ever; with it, once its last execution ended.
    pub async fn start(
        &self,
        project: Uuid,
        execution: &Execution,
        allow_reentry: bool,
    ) -> Result<Result<(), NotStarted>, StoreError> {
        let entry_key = keys::workflow_entry(project, execution.workflow_id, execution.contact_id);
        // The entry names the contact's last execution; with re-entry allowed the contact may
        // come back once that one has ended.
        let entry_condition = if allow_reentry {
            match self.table.get(&entry_key).await? {
                Some(entry) => {
                    let last = entry.body["executionId"]
                        .as_str()
                        .and_then(|id| id.parse::<Uuid>().ok());
                    if let Some(last) = last {
                        let active = self
                            .get(project, execution.workflow_id, last)
                            .await?
                            .is_some_and(|(e, _)| e.status.is_active());
                        if active {
                            return Ok(Err(NotStarted::Reentry));
                        }
                    }
                    Condition::VersionEquals(entry.version)
                }
                None => Condition::NotExists,
            }
        } else {
            Condition::NotExists
        };
        let version = match entry_condition {
            Condition::VersionEquals(v) => v + 1,
            _ => 1,
        };
        let entry =
            Item::new(entry_key, json!({"executionId": execution.id})).with_version(version);
        let ops = vec![
            WriteOp::Put {
                item: execution_item(project, execution, 1),
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                item: entry,
                condition: entry_condition,
            },
            WriteOp::Add {
                key: keys::workflow_active_counter(project, execution.workflow_id),
                delta: 1,
            },
        ];
        let mut ops = ops;
        ops.extend(wait_items(project, execution).into_iter().map(put));
        match self.table.transact(ops).await {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.is_condition_failed() => {
                let existing = self
                    .table
                    .get(&keys::workflow_execution(
                        project,
                        execution.workflow_id,
                        execution.id,
                    ))
                    .await?;
                Ok(Err(if existing.is_some() {
                    NotStarted::Duplicate
                } else {
                    NotStarted::Reentry
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// One execution with its version.
    pub async fn get(
        &self,
        project: Uuid,
        workflow: Uuid,
        id: Uuid,
    ) -> Result<Option<(Execution, u64)>, StoreError> {
        match self
            .table
            .get(&keys::workflow_execution(project, workflow, id))
            .await?
        {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// The records of the steps an execution ran, in order (at most one per step of the
    /// workflow, so at most 100).
    pub async fn steps(
        &self,
        project: Uuid,
        execution: Uuid,
    ) -> Result<Vec<StepExecution>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::execution_steps_partition(project, execution),
        );
        query.limit = 200;
        let page = self.table.query(query).await?;
        page.items.iter().map(crate::decode).collect()
    }

    /// Writes `after` (read as `before` at `version`) with the record of a step (`(place,
    /// record)`: a new place for a step begun, the same place to finish a step that waited),
    /// its wait items, and the active counter when it ends. `Ok(false)` when someone else
    /// changed the execution first.
    pub async fn save(
        &self,
        project: Uuid,
        before: &Execution,
        version: u64,
        after: &Execution,
        step: Option<(u32, &StepExecution)>,
    ) -> Result<bool, StoreError> {
        let mut ops = vec![WriteOp::Put {
            item: execution_item(project, after, version + 1),
            condition: Condition::VersionEquals(version),
        }];
        if let Some((place, record)) = step {
            ops.push(put(Item::new(
                keys::execution_step(project, after.id, place),
                crate::encode(record),
            )));
        }
        let old_waits = wait_items(project, before);
        let new_waits = wait_items(project, after);
        for item in &old_waits {
            if !new_waits.iter().any(|n| n.key == item.key) {
                ops.push(WriteOp::Delete {
                    key: item.key.clone(),
                    condition: Condition::None,
                });
            }
        }
        ops.extend(new_waits.into_iter().map(put));
        if before.status.is_active() && !after.status.is_active() {
            ops.push(WriteOp::Add {
                key: keys::workflow_active_counter(project, after.workflow_id),
                delta: -1,
            });
        }
        match self.table.transact(ops).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes what a deleted workflow's executions left, about `budget` items per call: each
    /// execution's step records and wait items, then the execution itself (last, so a call cut
    /// short finds it again); once none is left, the workflow's entries and its active counter.
    /// Whether anything is left for another call.
    pub async fn purge(
        &self,
        project: Uuid,
        workflow: Uuid,
        budget: usize,
    ) -> Result<bool, StoreError> {
        let mut deleted = 0;
        // Items are deleted as they are read, so every page starts at the top.
        for partition in [
            keys::workflow_executions_partition(project, workflow),
            keys::workflow_entries_partition(project, workflow),
        ] {
            loop {
                let mut query = Query::new(Index::Primary, partition.clone());
                query.limit = 25;
                let page = self.table.query(query).await?;
                if page.items.is_empty() {
                    break;
                }
                for item in &page.items {
                    if deleted >= budget {
                        return Ok(true);
                    }
                    let mut doomed = Vec::new();
                    if let Ok(execution) = crate::decode::<Execution>(item) {
                        let mut steps = Query::new(
                            Index::Primary,
                            keys::execution_steps_partition(project, execution.id),
                        );
                        steps.limit = 200;
                        let steps = self.table.query(steps).await?;
                        doomed.extend(steps.items.into_iter().map(|i| i.key));
                        doomed.extend(wait_items(project, &execution).into_iter().map(|i| i.key));
                    }
                    super::delete_keys(self.table, &doomed).await?;
                    self.table.delete(&item.key, Condition::None).await?;
                    deleted += doomed.len() + 1;
                }
            }
        }
        self.table
            .delete(
                &keys::workflow_active_counter(project, workflow),
                Condition::None,
            )
            .await?;
        Ok(false)
    }

    /// Whether the workflow ever had an execution (its trigger's event name is fixed from then).
    pub async fn any(&self, project: Uuid, workflow: Uuid) -> Result<bool, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::workflow_executions_partition(project, workflow),
        );
        query.limit = 1;
        Ok(!self.table.query(query).await?.items.is_empty())
    }

    /// The number of RUNNING or WAITING executions of a workflow.
    pub async fn active_count(&self, project: Uuid, workflow: Uuid) -> Result<u64, StoreError> {
        let item = self
            .table
            .get(&keys::workflow_active_counter(project, workflow))
            .await?;
        Ok(item
            .and_then(|i| i.counter)
            .map_or(0, |c| u64::try_from(c).unwrap_or(0)))
    }

    /// One page of a workflow's executions, newest first, optionally in one status and of one
    /// contact (the contact filter examines a bounded number of executions per page, so a page
    /// may be short while more remain).
    pub async fn list(
        &self,
        project: Uuid,
        workflow: Uuid,
        status: Option<ExecutionStatus>,
        contact: Option<Uuid>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ExecutionPage, StoreError> {
        let mut query = match status {
            Some(s) => Query::new(
                Index::Gsi1,
                keys::workflow_executions_by_status_index(project, workflow, s.as_str()),
            ),
            None => Query::new(
                Index::Primary,
                keys::workflow_executions_partition(project, workflow),
            ),
        };
        query.descending = true;
        query.start_after = start_after;
        let index = query.index;
        let page = scan::page(self.table, query, limit, contact.is_some(), |item| {
            let execution: Execution = crate::decode(item)?;
            Ok(contact
                .is_none_or(|c| c == execution.contact_id)
                .then(|| (execution, item.position(index))))
        })
        .await?;
        Ok(ExecutionPage {
            items: page.items.into_iter().map(|(e, _)| e).collect(),
            next: page.next,
        })
    }

    /// The executions of `contact` waiting for an event named `event_name`.
    pub async fn waiting_for(
        &self,
        project: Uuid,
        contact: Uuid,
        event_name: &str,
    ) -> Result<Vec<Waiting>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::contact_waits_partition(project, contact),
        );
        query.sort_prefix = Some(format!("{event_name}#"));
        query.limit = 100;
        let page = self.table.query(query).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|item| {
                Some(Waiting {
                    workflow: item.body["workflowId"].as_str()?.parse().ok()?,
                    execution: item.key.sk.rsplit('#').next()?.parse().ok()?,
                })
            })
            .collect())
    }

    /// Ends `CANCELLED` (`CONTACT_DELETED`) every execution of `contact` waiting for one of its
    /// events (a deleted contact has none to come); returns how many waits were read.
    pub async fn cancel_waits_of(
        &self,
        project: Uuid,
        contact: Uuid,
        now: plunk_domain::Timestamp,
    ) -> Result<usize, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::contact_waits_partition(project, contact),
        );
        query.limit = 100;
        let waits = self.table.query(query).await?.items;
        for item in &waits {
            let (Some(workflow), Some(execution)) = (
                item.body["workflowId"]
                    .as_str()
                    .and_then(|w| w.parse::<Uuid>().ok()),
                item.key
                    .sk
                    .rsplit('#')
                    .next()
                    .and_then(|e| e.parse::<Uuid>().ok()),
            ) else {
                continue;
            };
            // A few attempts: the engine may be moving the same execution.
            for _ in 0..3 {
                let Some((before, version)) = self.get(project, workflow, execution).await? else {
                    break;
                };
                if !before.status.is_active() {
                    break;
                }
                let mut after = before.clone();
                after.end(
                    ExecutionStatus::Cancelled,
                    Some("CONTACT_DELETED".into()),
                    now,
                );
                if self.save(project, &before, version, &after, None).await? {
                    break;
                }
            }
        }
        Ok(waits.len())
    }

    /// One page of the timers of `minute` and `shard`, after `start_after`.
    pub async fn due_timers(
        &self,
        minute: i64,
        shard: u32,
        start_after: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<DueTimer>, Option<Position>), StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::workflow_timers_partition(minute, shard),
        );
        query.start_after = start_after;
        query.limit = limit;
        let page = self.table.query(query).await?;
        let timers = page
            .items
            .iter()
            .filter_map(|item| {
                let (project, execution) = item.key.sk.split_once('#')?;
                Some(DueTimer {
                    project: project.parse().ok()?,
                    workflow: item.body["workflowId"].as_str()?.parse().ok()?,
                    execution: execution.parse().ok()?,
                })
            })
            .collect();
        Ok((timers, page.last))
    }

    /// How far the scheduler has worked the timers: `(minute, shard, position)` with its
    /// version.
    pub async fn timers_progress(&self) -> Result<Option<(TimerProgress, u64)>, StoreError> {
        super::progress::load(self.table, &keys::workflow_timers_state()).await
    }

    /// Stores the progress if it is still at `version` (`None`: never stored); false when
    /// another tick moved it first.
    pub async fn save_timers_progress(
        &self,
        progress: &TimerProgress,
        version: Option<u64>,
    ) -> Result<bool, StoreError> {
        super::progress::save(self.table, keys::workflow_timers_state(), progress, version).await
    }
}

/// How far the scheduler has worked the workflow timers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimerProgress {
    pub minute: i64,
    pub shard: u32,
    #[serde(default)]
    pub position: Option<Position>,
}
