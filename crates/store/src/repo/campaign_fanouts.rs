//! The fan-out jobs of SENDING campaigns: one item per campaign in a global partition (sort key
//! `<project>#<campaign>`, so projects take turns, `repo::turns`), created in the same
//! transaction that moves the campaign to SENDING and removed when the campaign ends.
//!
//! The item is the fan-out's checkpoint: where the audience read stopped and how many pages and
//! recipients are done. A worker takes a job with a short lease (a version-conditioned write),
//! so two scheduler ticks never fan out the same campaign at once, and saves each page's
//! checkpoint together with the page's counter additions in one transaction: a page is counted
//! exactly when its checkpoint is written, however often it was attempted. Before writing a
//! page's emails the holder saves which contacts the page holds, so a page left unfinished is
//! finished with exactly those contacts.

use crate::keys;
use crate::repo::turns;
use crate::table::{Condition, Item, Position, StoreError, Table, WriteOp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A campaign's fan-out progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutJob {
    pub project: Uuid,
    pub campaign: Uuid,
    /// Where the audience read stopped; `None` before the first page.
    #[serde(default)]
    pub position: Option<Position>,
    /// The whole audience has been read (what is left is waiting for the sends to end).
    #[serde(default)]
    pub fanned_out: bool,
    #[serde(default)]
    pub pages: u64,
    #[serde(default)]
    pub recipients: u64,
    /// A worker holds the job until then (Unix ms).
    #[serde(default)]
    pub lease_until_ms: Option<i64>,
    /// The contacts of the page being written, saved before its emails are: a holder that
    /// stops before the checkpoint leaves the next one exactly this page to finish (the same
    /// contacts, whatever changed in the audience meanwhile), and its email ids make the
    /// writes it repeats change nothing.
    #[serde(default)]
    pub page_contacts: Vec<Uuid>,
    /// Where the audience read goes on after that page.
    #[serde(default)]
    pub page_next: Option<Position>,
}

impl FanoutJob {
    /// A new job, before its first page.
    pub fn new(project: Uuid, campaign: Uuid) -> Self {
        Self {
            project,
            campaign,
            position: None,
            fanned_out: false,
            pages: 0,
            recipients: 0,
            lease_until_ms: None,
            page_contacts: Vec::new(),
            page_next: None,
        }
    }

    /// The item of this job at `version`.
    pub fn item(&self, version: u64) -> Item {
        Item::new(
            keys::campaign_fanout(self.project, self.campaign),
            crate::encode(self),
        )
        .with_version(version)
    }
}

/// Most jobs one pass reads.
const MAX_JOBS_PER_PASS: usize = 1_000;

/// Fan-out job operations of one table.
pub struct CampaignFanouts<'a> {
    table: &'a dyn Table,
}

impl<'a> CampaignFanouts<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The jobs by project, in turn order (the project after the one served last first).
    pub async fn due(&self) -> Result<Vec<(Uuid, Vec<(FanoutJob, u64)>)>, StoreError> {
        let grouped = turns::pending_by_project(
            self.table,
            keys::CAMPAIGN_FANOUTS_PARTITION,
            &keys::campaign_fanout_turn(),
            MAX_JOBS_PER_PASS,
        )
        .await?;
        let mut out = Vec::with_capacity(grouped.len());
        for (project, items) in grouped {
            let mut jobs = Vec::with_capacity(items.len());
            for item in items {
                jobs.push((crate::decode::<FanoutJob>(&item)?, item.version));
            }
            out.push((project, jobs));
        }
        Ok(out)
    }

    /// One job with its version.
    pub async fn get(
        &self,
        project: Uuid,
        campaign: Uuid,
    ) -> Result<Option<(FanoutJob, u64)>, StoreError> {
        match self
            .table
            .get(&keys::campaign_fanout(project, campaign))
            .await?
        {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// Takes `job` (read at `version`) until `lease_until_ms`. `None` when another worker holds
    /// it or took it first.
    pub async fn claim(
        &self,
        mut job: FanoutJob,
        version: u64,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<(FanoutJob, u64)>, StoreError> {
        if job.lease_until_ms.is_some_and(|until| until > now_ms) {
            return Ok(None);
        }
        job.lease_until_ms = Some(lease_until_ms);
        match self
            .table
            .put(job.item(version + 1), Condition::VersionEquals(version))
            .await
        {
            Ok(()) => Ok(Some((job, version + 1))),
            Err(e) if e.is_condition_failed() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `job` (held at `version`) and adds `counters` of its campaign, in one transaction
    /// (a plain conditional write without counters). `ConditionFailed` when the job changed
    /// (the lease was lost).
    pub async fn checkpoint(
        &self,
        job: &FanoutJob,
        version: u64,
        counters: &[(&str, i64)],
    ) -> Result<u64, StoreError> {
        let mut ops = vec![WriteOp::Put {
            item: job.item(version + 1),
            condition: Condition::VersionEquals(version),
        }];
        ops.extend(
            counters
                .iter()
                .filter(|(_, delta)| *delta != 0)
                .map(|(name, delta)| WriteOp::Add {
                    key: keys::campaign_counter(job.project, job.campaign, name),
                    delta: *delta,
                }),
        );
        if ops.len() == 1 {
            self.table
                .put(job.item(version + 1), Condition::VersionEquals(version))
                .await?;
        } else {
            self.table.transact(ops).await?;
        }
        Ok(version + 1)
    }

    /// Removes a campaign's job (the campaign ended or is gone).
    pub async fn finish(&self, project: Uuid, campaign: Uuid) -> Result<(), StoreError> {
        self.table
            .delete(&keys::campaign_fanout(project, campaign), Condition::None)
            .await
    }

    /// Records that a pass served `project` last.
    pub async fn record_turn(&self, project: Uuid) -> Result<(), StoreError> {
        turns::record_turn(self.table, keys::campaign_fanout_turn(), project).await
    }
}
