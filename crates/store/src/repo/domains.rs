//! Sending domains (spec domains.md). A domain record lives in the project's domains partition;
//! a global claim item per domain name keeps one domain in one project and carries the
//! `verified` flag, so the sender check of every send path is one read.

use crate::keys;
use crate::table::{StoreError, Table};
use plunk_domain::EmailAddress;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Body of the global claim item (`keys::domain_name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaim {
    pub project_id: Uuid,
    pub domain_id: Uuid,
    pub verified: bool,
}

/// Why a sender address may not be used (spec domains.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SenderRejection {
    /// No Domain of this project has exactly this name.
    NotRegistered,
    /// The project's Domain exists but is not verified.
    NotVerified,
}

/// Domain operations of one table.
pub struct Domains<'a> {
    table: &'a dyn Table,
}

impl<'a> Domains<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// The claim on `name` (lowercase), whichever project holds it.
    pub async fn claim(&self, name: &str) -> Result<Option<DomainClaim>, StoreError> {
        match self.table.get(&keys::domain_name(name)).await? {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The sender rule: the address's domain (after the last `@`, lowercased) must be exactly a
    /// verified Domain of `project`. `Ok(Err(..))` carries the rejection and the domain checked.
    pub async fn check_sender(
        &self,
        project: Uuid,
        sender: &EmailAddress,
    ) -> Result<Result<(), (String, SenderRejection)>, StoreError> {
        let domain = sender.domain().to_owned();
        Ok(match self.claim(&domain).await? {
            Some(claim) if claim.project_id == project && claim.verified => Ok(()),
            Some(claim) if claim.project_id == project => {
                Err((domain, SenderRejection::NotVerified))
            }
            _ => Err((domain, SenderRejection::NotRegistered)),
        })
    }
}
