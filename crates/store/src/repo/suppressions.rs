//! The suppression list: addresses of a project that are never sent to. Every send path checks
//! it; the `/suppressions` API and the bounce and complaint feedback that fill it arrive with the
//! events issue.

use crate::keys;
use crate::table::{Condition, Item, StoreError, Table};
use plunk_domain::{EmailAddress, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an address is suppressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    pub id: Uuid,
    pub email: String,
    pub reason: String,
    pub created_at: Timestamp,
}

/// Suppression operations of one table.
pub struct Suppressions<'a> {
    table: &'a dyn Table,
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

    /// Suppresses `email` (keeping an existing entry as it is).
    pub async fn add(
        &self,
        project: Uuid,
        email: &EmailAddress,
        reason: &str,
    ) -> Result<(), StoreError> {
        let s = Suppression {
            id: plunk_domain::id::new_id(),
            email: email.to_string(),
            reason: reason.to_owned(),
            created_at: Timestamp::now(),
        };
        let item = Item::new(
            keys::suppression(project, email.as_str()),
            crate::encode(&s),
        );
        match self.table.put(item, Condition::NotExists).await {
            Err(e) if !e.is_condition_failed() => Err(e),
            _ => Ok(()),
        }
    }
}
