//! Campaign counters (spec campaigns.md §5): one counter item per campaign and name in the
//! campaign's counters partition, moved with atomic adds. Each email counts at most once per
//! counter: [`CampaignCounters::bump_once`] writes a marker item for `(counter, email)` under a
//! not-exists condition in the same transaction as the add, so a repeated or concurrent bump for
//! the same email changes nothing.

use crate::keys;
use crate::table::{Condition, Index, Item, Query, StoreError, Table, WriteOp};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// `unsubscribedCount`: emails whose unsubscribe link or one-click header unsubscribed the contact.
pub const UNSUBSCRIBED_COUNT: &str = "unsubscribedCount";

/// Counter operations of one table.
pub struct CampaignCounters<'a> {
    table: &'a dyn Table,
}

impl<'a> CampaignCounters<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// Adds `delta` to the counter `name` of a campaign (created at 0); returns the new value.
    pub async fn bump(
        &self,
        project: Uuid,
        campaign: Uuid,
        name: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        self.table
            .add(
                &keys::campaign_counter(project, campaign, name),
                delta,
                None,
                None,
            )
            .await
    }

    /// Adds 1 to the counter `name` unless `email` was already counted there; true when this
    /// call counted it.
    pub async fn bump_once(
        &self,
        project: Uuid,
        campaign: Uuid,
        name: &str,
        email: Uuid,
    ) -> Result<bool, StoreError> {
        let marker = Item::new(
            keys::campaign_counted(project, campaign, name, email),
            json!({ "emailId": email }),
        );
        let ops = vec![
            WriteOp::Put {
                item: marker,
                condition: Condition::NotExists,
            },
            WriteOp::Add {
                key: keys::campaign_counter(project, campaign, name),
                delta: 1,
            },
        ];
        match self.table.transact(ops).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One counter's value (0 when never moved).
    pub async fn get(&self, project: Uuid, campaign: Uuid, name: &str) -> Result<i64, StoreError> {
        let item = self
            .table
            .get(&keys::campaign_counter(project, campaign, name))
            .await?;
        Ok(item.and_then(|i| i.counter).unwrap_or(0))
    }

    /// Every counter of a campaign that was ever moved, by name.
    pub async fn all(
        &self,
        project: Uuid,
        campaign: Uuid,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut out = BTreeMap::new();
        let mut query = Query::new(
            Index::Primary,
            keys::campaign_counters_partition(project, campaign),
        );
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in page.items {
                out.insert(item.key.sk.clone(), item.counter.unwrap_or(0));
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sqlite::SqliteTable;

    #[tokio::test]
    async fn an_email_counts_once_per_counter() {
        let table = SqliteTable::in_memory().unwrap();
        let counters = CampaignCounters::new(&table);
        let (project, campaign) = (Uuid::now_v7(), Uuid::now_v7());
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            counters
                .get(project, campaign, UNSUBSCRIBED_COUNT)
                .await
                .unwrap(),
            0
        );
        assert!(counters
            .bump_once(project, campaign, UNSUBSCRIBED_COUNT, first)
            .await
            .unwrap());
        assert!(!counters
            .bump_once(project, campaign, UNSUBSCRIBED_COUNT, first)
            .await
            .unwrap());
        assert!(counters
            .bump_once(project, campaign, UNSUBSCRIBED_COUNT, second)
            .await
            .unwrap());
        // The same email in another counter is counted there.
        assert!(counters
            .bump_once(project, campaign, "clickedCount", first)
            .await
            .unwrap());
        assert_eq!(
            counters
                .get(project, campaign, UNSUBSCRIBED_COUNT)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            counters
                .bump(project, campaign, "sentCount", 5)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            counters
                .bump(project, campaign, "sentCount", -2)
                .await
                .unwrap(),
            3
        );
        let all = counters.all(project, campaign).await.unwrap();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            [
                ("clickedCount".to_owned(), 1),
                ("sentCount".to_owned(), 3),
                (UNSUBSCRIBED_COUNT.to_owned(), 2)
            ]
        );
        assert!(counters
            .all(project, Uuid::now_v7())
            .await
            .unwrap()
            .is_empty());
    }
}
