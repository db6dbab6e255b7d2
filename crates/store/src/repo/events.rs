//! Stored events: one item per event in the project's events
//! partition (ids are UUIDv7, so the sort key orders them by time), listed per contact on `Gsi1`.
//! New items reach the dispatcher through the change feed (`crate::feed`). Deleting a name is a
//! background job the scheduler works through ([`Events::work_deletions`]).

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::repo::turns;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::event::Event;
use serde_json::json;
use uuid::Uuid;

/// Most distinct custom event names a project may hold.
pub const MAX_EVENT_NAMES: i64 = 10_000;

/// Whether a name may be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameAdmission {
    /// Known, or registered now.
    Admitted,
    /// New, and the project already holds [`MAX_EVENT_NAMES`] names.
    LimitReached,
}

/// Most events [`Events::count_uncounted`] examines.
pub const UNCOUNTED_SCAN: usize = 5_000;

/// Event reads and writes of one table.
pub struct Events<'a> {
    table: &'a dyn Table,
}

/// The item an event is stored as: newest last in the project's events partition, and on the
/// contact's events index when it has a contact.
pub fn event_item(project: Uuid, event: &Event) -> Item {
    let mut item = Item::new(keys::event(project, event.id), crate::encode(event));
    if let Some(contact) = event.contact_id {
        item = item.with_gsi1(
            keys::contact_events_index(project, contact),
            event.id.to_string(),
        );
    }
    item
}

impl<'a> Events<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Admits `name` for tracking: a known name always; a new one is registered unless the
    /// project holds [`MAX_EVENT_NAMES`] (a conditional add on the names counter, so concurrent
    /// new names never pass the bound). One eventually consistent read for a known name.
    pub async fn admit_name(&self, project: Uuid, name: &str) -> Result<NameAdmission, StoreError> {
        let registered = Key::new(keys::event_name_registry_partition(project), name);
        if self.table.get_eventually(&registered).await?.is_some() {
            return Ok(NameAdmission::Admitted);
        }
        let count = keys::event_name_count(project);
        match self.table.add(&count, 1, Some(MAX_EVENT_NAMES), None).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failed() => return Ok(NameAdmission::LimitReached),
            Err(e) => return Err(e),
        }
        match self
            .table
            .put(Item::new(registered, json!({})), Condition::NotExists)
            .await
        {
            Ok(()) => {}
            // Registered at the same moment by another request: count it once.
            Err(e) if e.is_condition_failed() => {
                self.table.add(&count, -1, None, None).await?;
            }
            Err(e) => return Err(e),
        }
        Ok(NameAdmission::Admitted)
    }

    /// Frees `name`'s place among the project's names (`DELETE /events/:name`).
    pub async fn forget_name(&self, project: Uuid, name: &str) -> Result<(), StoreError> {
        let ops = vec![
            WriteOp::Delete {
                key: Key::new(keys::event_name_registry_partition(project), name),
                condition: Condition::Exists,
            },
            WriteOp::Add {
                key: keys::event_name_count(project),
                delta: -1,
            },
        ];
        match self.table.transact(ops).await {
            // Never registered (tracked before names were registered): nothing to free.
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other,
        }
    }

    /// Records an event.
    pub async fn record(&self, project: Uuid, event: &Event) -> Result<(), StoreError> {
        self.table
            .put(event_item(project, event), crate::table::Condition::None)
            .await
    }

    /// One event by id.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Event>, StoreError> {
        match self.table.get(&keys::event(project, id)).await? {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// One page of a contact's events, newest first, optionally only those named `name`.
    pub async fn for_contact(
        &self,
        project: Uuid,
        contact: Uuid,
        name: Option<&str>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Event>, StoreError> {
        let mut query = Query::new(Index::Gsi1, keys::contact_events_index(project, contact));
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, name.is_some(), |item| {
            let event: Event = crate::decode(item)?;
            Ok(name.is_none_or(|n| event.name == n).then_some(event))
        })
        .await
    }

    /// One page of the project's events, newest first, optionally only those named `name`.
    pub async fn list(
        &self,
        project: Uuid,
        name: Option<&str>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Event>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::events_partition(project));
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, name.is_some(), |item| {
            let event: Event = crate::decode(item)?;
            Ok(name.is_none_or(|n| event.name == n).then_some(event))
        })
        .await
    }

    /// Whether one of the project's newest events (at most [`scan::SCAN_BUDGET`] examined) is
    /// named `name`: the check for names the counters have not caught up with yet. Bounded, so
    /// a request never reads a whole partition.
    pub async fn recently_named(&self, project: Uuid, name: &str) -> Result<bool, StoreError> {
        Ok(!self
            .list(project, Some(name), 1, None)
            .await?
            .items
            .is_empty())
    }

    /// Schedules the removal of every event of `project` named `name` stored until now; returns
    /// the cutoff: events with an older id are removed.
    pub async fn request_deletion(&self, project: Uuid, name: &str) -> Result<Uuid, StoreError> {
        // Events are UUIDv7: everything stored before this id is older than the request.
        let cutoff = plunk_domain::id::new_id();
        let job = DeletionJob {
            project,
            name: name.to_owned(),
            cutoff,
            position: None,
            phase: DeletionPhase::Events,
        };
        self.table
            .put(
                Item::new(keys::event_deletion(project, name), json!(job)),
                Condition::None,
            )
            .await?;
        Ok(cutoff)
    }

    /// How many events named `name` were stored with an id between `after` (exclusive; `None`:
    /// no lower end) and `before` (exclusive): the events the counters have not seen yet when
    /// `after` is the newest one they counted. The change feed lags by seconds, so this reads
    /// only the newest part of the partition; at most [`UNCOUNTED_SCAN`] events are examined.
    pub async fn count_uncounted(
        &self,
        project: Uuid,
        name: &str,
        after: Option<Uuid>,
        before: Uuid,
    ) -> Result<u64, StoreError> {
        let mut query = Query::new(Index::Primary, keys::events_partition(project));
        query.descending = true;
        query.limit = 200;
        query.start_after = Some(Position {
            key: keys::event(project, before),
            gsi1: None,
        });
        let (mut examined, mut count) = (0, 0);
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                let event: Event = crate::decode(item)?;
                if after.is_some_and(|after| event.id <= after) {
                    return Ok(count);
                }
                if event.name == name {
                    count += 1;
                }
                examined += 1;
                if examined >= UNCOUNTED_SCAN {
                    tracing::warn!(%project, "uncounted events examined up to the bound");
                    return Ok(count);
                }
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => return Ok(count),
            }
        }
    }

    /// Works through pending deletions, examining at most `budget` items in all. Returns how many
    /// events it deleted. Progress is saved after each page, so a crash repeats at most a page.
    ///
    /// Projects take turns: the budget is shared equally among the projects with pending jobs
    /// (at least [`DELETION_SHARE_MIN`] items each), and each call starts with the project after
    /// the one the previous call served last, so a project with a million events to delete never
    /// holds back another project's deletions.
    pub async fn work_deletions(&self, budget: usize) -> Result<usize, StoreError> {
        let turn = keys::event_deletion_turn();
        let projects = turns::pending_by_project(
            self.table,
            keys::EVENT_DELETIONS_PARTITION,
            &turn,
            DELETION_JOBS_READ,
        )
        .await?;
        if projects.is_empty() {
            return Ok(0);
        }
        let share = turns::share(budget, projects.len(), DELETION_SHARE_MIN);
        let (mut examined, mut deleted) = (0, 0);
        let mut served = None;
        for (project, list) in projects {
            if examined >= budget {
                break;
            }
            let mut left = share.min(budget - examined);
            for item in list {
                if left == 0 {
                    break;
                }
                let mut job: DeletionJob = crate::decode(&item)?;
                let (e, d) = self.work_job(&item.key, &mut job, left).await?;
                left = left.saturating_sub(e);
                examined += e;
                deleted += d;
            }
            served = Some(project);
        }
        if let Some(project) = served {
            turns::record_turn(self.table, turn, project).await?;
        }
        Ok(deleted)
    }

    /// Works one job for at most `budget` examined items (a page may go over by its size); returns
    /// `(examined, deleted events)`.
    async fn work_job(
        &self,
        job_key: &Key,
        job: &mut DeletionJob,
        budget: usize,
    ) -> Result<(usize, usize), StoreError> {
        let (mut examined, mut deleted) = (0, 0);
        while examined < budget && job.phase != DeletionPhase::Done {
            let mut query = match job.phase {
                DeletionPhase::Events => {
                    let mut q = Query::new(Index::Primary, keys::events_partition(job.project));
                    q.start_after = job.position.clone();
                    q
                }
                // Markers are deleted as they are read, so every page starts at the top.
                _ => Query::new(
                    Index::Primary,
                    keys::event_contact_marker(job.project, &job.name, Uuid::nil()).pk,
                ),
            };
            query.limit = 100.min(budget - examined).max(1);
            let page = self.table.query(query).await?;
            examined += page.items.len().max(1);
            let doomed: Vec<Key> = page
                .items
                .iter()
                .filter(|item| match job.phase {
                    DeletionPhase::Events => crate::decode::<Event>(item)
                        .is_ok_and(|e| e.name == job.name && e.id <= job.cutoff),
                    _ => true,
                })
                .map(|item| item.key.clone())
                .collect();
            for chunk in doomed.chunks(25) {
                let ops = chunk
                    .iter()
                    .map(|key| WriteOp::Delete {
                        key: key.clone(),
                        condition: Condition::None,
                    })
                    .collect();
                self.table.transact(ops).await?;
            }
            if job.phase == DeletionPhase::Events {
                deleted += doomed.len();
            }
            match (job.phase, page.last) {
                (DeletionPhase::Events, Some(last)) => job.position = Some(last),
                (DeletionPhase::Events, None) => job.phase = DeletionPhase::Markers,
                (_, Some(_)) => {}
                (_, None) => job.phase = DeletionPhase::Done,
            }
            if job.phase == DeletionPhase::Done {
                self.table.delete(job_key, Condition::None).await?;
            } else {
                self.table
                    .put(Item::new(job_key.clone(), json!(job)), Condition::None)
                    .await?;
            }
        }
        Ok((examined, deleted))
    }
}

/// The least a project with pending deletions gets of a call's budget.
pub const DELETION_SHARE_MIN: usize = 100;
/// Most pending deletion jobs one call reads.
const DELETION_JOBS_READ: usize = 1_000;

/// Where a deletion job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum DeletionPhase {
    /// Scanning the events partition from `position`.
    Events,
    /// Deleting the unique-contact markers of the name.
    Markers,
    Done,
}

/// A pending `DELETE /events/:name`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletionJob {
    project: Uuid,
    name: String,
    cutoff: Uuid,
    /// Where the events scan stopped.
    position: Option<Position>,
    phase: DeletionPhase,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sqlite::SqliteTable;
    use plunk_domain::event::EventSource;
    use plunk_domain::Timestamp;

    async fn store_events(events: &Events<'_>, project: Uuid, name: &str, n: usize) {
        for _ in 0..n {
            let event = Event {
                id: plunk_domain::id::new_id(),
                name: name.to_owned(),
                contact_id: None,
                contact_email: None,
                email_id: None,
                data: Default::default(),
                source: EventSource::Api,
                created_at: Timestamp::now(),
            };
            events.record(project, &event).await.unwrap();
        }
    }

    async fn left(events: &Events<'_>, project: Uuid, name: &str) -> usize {
        let mut query = Query::new(Index::Primary, keys::events_partition(project));
        query.limit = 10_000;
        let page = events.table.query(query).await.unwrap();
        page.items
            .iter()
            .filter(|i| crate::decode::<Event>(i).unwrap().name == name)
            .count()
    }

    #[tokio::test]
    async fn two_projects_deletion_jobs_progress_side_by_side() {
        let table = SqliteTable::in_memory().unwrap();
        let events = Events::new(&table);
        // The big project's id sorts first, so reading jobs in key order would serve it first.
        let big = Uuid::from_u128(1);
        let small = Uuid::from_u128(2);
        store_events(&events, big, "bulk", 1_500).await;
        store_events(&events, small, "promo", 40).await;
        events.request_deletion(big, "bulk").await.unwrap();
        events.request_deletion(small, "promo").await.unwrap();

        // One pass with a budget the big project alone would use up.
        let deleted = events.work_deletions(500).await.unwrap();
        assert_eq!(
            left(&events, small, "promo").await,
            0,
            "the small project was served"
        );
        let big_left = left(&events, big, "bulk").await;
        assert!(big_left < 1_500, "the big project progressed too");
        assert_eq!(deleted, 40 + (1_500 - big_left));

        // Later passes finish the big one.
        for _ in 0..10 {
            events.work_deletions(500).await.unwrap();
        }
        assert_eq!(left(&events, big, "bulk").await, 0);
        let jobs = table
            .query(Query::new(Index::Primary, keys::EVENT_DELETIONS_PARTITION))
            .await
            .unwrap();
        assert!(jobs.items.is_empty(), "finished jobs are removed");
    }

    #[tokio::test]
    async fn with_more_projects_than_the_budget_covers_each_pass_starts_after_the_last_served() {
        let table = SqliteTable::in_memory().unwrap();
        let events = Events::new(&table);
        let projects: Vec<Uuid> = (1..=5).map(Uuid::from_u128).collect();
        for p in &projects {
            store_events(&events, *p, "x", 150).await;
            events.request_deletion(*p, "x").await.unwrap();
        }
        // Each pass covers two projects' minimum shares (100 items each).
        let mut first_touched = Vec::new();
        for _ in 0..3 {
            events.work_deletions(200).await.unwrap();
            let mut touched = Vec::new();
            for p in &projects {
                if left(&events, *p, "x").await < 150 {
                    touched.push(*p);
                }
            }
            first_touched.push(touched.len());
        }
        // Three passes of two shares reach all five projects (wrapping around), none twice first.
        assert_eq!(first_touched, vec![2, 4, 5]);
    }
}
