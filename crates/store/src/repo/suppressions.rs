//! The suppression list (spec feedback-and-unsubscribe.md §3): addresses of a project that are
//! never sent to. One item per address (so every send path checks it in one read), listed newest
//! first on `Gsi1` by suppression id.

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table};
use plunk_domain::{EmailAddress, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an address is suppressed: the domain's enum, so feedback and this list speak one type.
pub use plunk_domain::feedback::SuppressionReason;

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    pub id: Uuid,
    pub email: String,
    pub reason: SuppressionReason,
    #[serde(default)]
    pub email_id: Option<Uuid>,
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    #[serde(default)]
    pub note: Option<String>,
    pub created_at: Timestamp,
}

/// What caused a new suppression.
#[derive(Debug, Clone, Default)]
pub struct SuppressionCause {
    pub email_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub note: Option<String>,
}

/// Suppression operations of one table.
pub struct Suppressions<'a> {
    table: &'a dyn Table,
}

fn item(project: Uuid, s: &Suppression) -> Item {
    Item::new(keys::suppression(project, &s.email), crate::encode(s))
        .with_gsi1(keys::suppressions_index(project), s.id.to_string())
}

impl<'a> Suppressions<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The suppression of `email`, if any.
    pub async fn get(
        &self,
        project: Uuid,
        email: &EmailAddress,
    ) -> Result<Option<Suppression>, StoreError> {
        match self
            .table
            .get(&keys::suppression(project, email.as_str()))
            .await?
        {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The entry for `email`, eventually consistent (half a read unit): an entry made within
    /// the last second may not be seen yet. For the check at acceptance only; the send worker
    /// checks again consistently just before sending, so a suppressed address is never sent to.
    pub async fn get_eventually(
        &self,
        project: Uuid,
        email: &EmailAddress,
    ) -> Result<Option<Suppression>, StoreError> {
        match self
            .table
            .get_eventually(&keys::suppression(project, email.as_str()))
            .await?
        {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// [`Self::get_eventually`] for many addresses, in the order asked, 100 to a batched read.
    pub async fn get_many_eventually(
        &self,
        project: Uuid,
        emails: &[EmailAddress],
    ) -> Result<Vec<Option<Suppression>>, StoreError> {
        let mut out = Vec::with_capacity(emails.len());
        for chunk in emails.chunks(100) {
            let keys: Vec<_> = chunk
                .iter()
                .map(|e| keys::suppression(project, e.as_str()))
                .collect();
            for item in self.table.batch_get_eventually(&keys).await? {
                out.push(match item {
                    Some(item) => Some(crate::decode(&item)?),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    /// Suppresses `email`. An existing entry stays as it is and is returned with `false`.
    pub async fn add(
        &self,
        project: Uuid,
        email: &EmailAddress,
        reason: SuppressionReason,
        cause: SuppressionCause,
    ) -> Result<(Suppression, bool), StoreError> {
        let s = Suppression {
            id: plunk_domain::id::new_id(),
            email: email.to_string(),
            reason,
            email_id: cause.email_id,
            campaign_id: cause.campaign_id,
            note: cause.note,
            created_at: Timestamp::now(),
        };
        match self
            .table
            .put(item(project, &s), Condition::NotExists)
            .await
        {
            Ok(()) => Ok((s, true)),
            Err(e) if e.is_condition_failed() => match self.get(project, email).await? {
                Some(existing) => Ok((existing, false)),
                // Deleted in between: nothing stands in the way now.
                None => self
                    .table
                    .put(item(project, &s), Condition::None)
                    .await
                    .map(|()| (s, true)),
            },
            Err(e) => Err(e),
        }
    }

    /// One page, newest first, optionally of one reason.
    pub async fn list(
        &self,
        project: Uuid,
        reason: Option<SuppressionReason>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ScanPage<Suppression>, StoreError> {
        let mut query = Query::new(Index::Gsi1, keys::suppressions_index(project));
        query.descending = true;
        query.start_after = start_after;
        scan::page(self.table, query, limit, reason.is_some(), |item| {
            let s: Suppression = crate::decode(item)?;
            Ok(reason.is_none_or(|r| s.reason == r).then_some(s))
        })
        .await
    }

    /// Deletes the suppression with this id; `None` when there is none.
    pub async fn delete(&self, project: Uuid, id: Uuid) -> Result<Option<Suppression>, StoreError> {
        let mut query = Query::new(Index::Gsi1, keys::suppressions_index(project));
        query.sort_prefix = Some(id.to_string());
        query.limit = 1;
        let page = self.table.query(query).await?;
        let Some(found) = page.items.into_iter().next() else {
            return Ok(None);
        };
        let s: Suppression = crate::decode(&found)?;
        self.table.delete(&found.key, Condition::None).await?;
        Ok(Some(s))
    }
}
