//! Sending domains. A domain record lives in the project's domains partition
//! (listed newest first) with a `Gsi1` entry per verification state (the `verified` filter); a
//! global claim item per domain name keeps one domain in one project and carries the `verified`
//! flag, so the sender check of every send path is one read. The record and its claim only ever
//! change together, in one transaction.

use crate::keys;
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::sending_domain::Domain;
use plunk_domain::EmailAddress;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many times a write lost to a concurrent one is retried before giving up.
const MAX_ATTEMPTS: usize = 8;

/// Failures of domain operations.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("domain not found")]
    NotFound,
    /// The name is claimed by a Domain of this or another project.
    #[error("domain already registered")]
    AlreadyExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of domains.
#[derive(Debug, Clone)]
pub struct DomainPage {
    pub items: Vec<Domain>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Position>,
}

/// What a resource using a domain as its sender is (`details.usedBy[].type` of `DOMAIN_IN_USE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsedByType {
    Template,
    Campaign,
}

/// Most uses `DOMAIN_IN_USE` lists.
pub const MAX_USED_BY: usize = 100;

/// One resource that sends from a domain (`DELETE /domains/:id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedBy {
    #[serde(rename = "type")]
    pub kind: UsedByType,
    pub id: Uuid,
    pub name: String,
}

fn domain_item(project: Uuid, domain: &Domain, version: u64) -> Item {
    Item::new(keys::domain(project, domain.id), crate::encode(domain))
        .with_gsi1(
            keys::domains_by_verified_index(project, domain.verified),
            domain.id.to_string(),
        )
        .with_version(version)
}

fn claim_item(project: Uuid, domain: &Domain) -> Item {
    let claim = DomainClaim {
        project_id: project,
        domain_id: domain.id,
        verified: domain.verified,
    };
    Item::new(keys::domain_name(&domain.domain), crate::encode(&claim))
}

fn retry_exhausted() -> DomainError {
    DomainError::Store(StoreError::Unavailable(
        "domain changed concurrently too often; try again".into(),
    ))
}

/// Body of the global claim item (`keys::domain_name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaim {
    pub project_id: Uuid,
    pub domain_id: Uuid,
    pub verified: bool,
}

/// Why a sender address may not be used.
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

    async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(Domain, u64)>, StoreError> {
        match self.table.get(&keys::domain(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One domain of `project` by id.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Domain>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|(d, _)| d))
    }

    /// Stores a new domain and claims its name, both or neither. A name already claimed, by this
    /// or any other project, is `AlreadyExists` (the claim is written with `NotExists`, so two
    /// concurrent creates of one name cannot both succeed).
    pub async fn create(&self, project: Uuid, domain: &Domain) -> Result<(), DomainError> {
        let ops = vec![
            WriteOp::Put {
                item: domain_item(project, domain, 1),
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                item: claim_item(project, domain),
                condition: Condition::NotExists,
            },
        ];
        match self.table.transact(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(1) }) => Err(DomainError::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a domain with `change` (re-applied to the current record after a lost race) and
    /// writes the record and its claim's `verified` flag in one transaction, guarded by the
    /// record's version.
    pub async fn update(
        &self,
        project: Uuid,
        id: Uuid,
        change: impl Fn(&mut Domain),
    ) -> Result<Domain, DomainError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((before, version)) = self.get_versioned(project, id).await? else {
                return Err(DomainError::NotFound);
            };
            let mut after = before.clone();
            change(&mut after);
            after.id = before.id;
            after.domain = before.domain.clone();
            if after == before {
                return Ok(before);
            }
            let ops = vec![
                WriteOp::Put {
                    item: domain_item(project, &after, version + 1),
                    condition: Condition::VersionEquals(version),
                },
                // Guarded by the record's version: the claim of a live record is this project's.
                WriteOp::Put {
                    item: claim_item(project, &after),
                    condition: Condition::None,
                },
            ];
            match self.table.transact(ops).await {
                Ok(()) => return Ok(after),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(retry_exhausted())
    }

    /// Deletes a domain and releases its name.
    pub async fn delete(&self, project: Uuid, id: Uuid) -> Result<Domain, DomainError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((domain, version)) = self.get_versioned(project, id).await? else {
                return Err(DomainError::NotFound);
            };
            let ops = vec![
                WriteOp::Delete {
                    key: keys::domain(project, id),
                    condition: Condition::VersionEquals(version),
                },
                WriteOp::Delete {
                    key: keys::domain_name(&domain.domain),
                    condition: Condition::None,
                },
            ];
            match self.table.transact(ops).await {
                Ok(()) => return Ok(domain),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(retry_exhausted())
    }

    /// One page of a project's domains, newest first; with `verified`, only those in that state.
    pub async fn list(
        &self,
        project: Uuid,
        verified: Option<bool>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<DomainPage, StoreError> {
        let mut query = match verified {
            Some(v) => Query::new(Index::Gsi1, keys::domains_by_verified_index(project, v)),
            None => Query::new(Index::Primary, keys::domains_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        let page = scan::page(self.table, query, limit, false, |item| {
            crate::decode::<Domain>(item).map(Some)
        })
        .await?;
        Ok(DomainPage {
            items: page.items,
            next: page.next,
        })
    }

    /// The templates (and, once they exist, campaigns in DRAFT, SCHEDULED or SENDING) whose
    /// sender address is at `domain` (`DELETE /domains/:id` → 409
    /// `DOMAIN_IN_USE`): the sender-use items the templates repository keeps under the domain,
    /// at most [`MAX_USED_BY`] of them.
    pub async fn domain_usage(
        &self,
        project: Uuid,
        domain: &str,
    ) -> Result<Vec<UsedBy>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::sender_uses_partition(project, domain));
        query.limit = MAX_USED_BY;
        let page = self.table.query(query).await?;
        page.items.iter().map(crate::decode::<UsedBy>).collect()
    }
}
