//! Contacts: one item per contact in the project's contacts partition (listed newest first), a
//! uniqueness item per normalised email, a global item naming the contact's project (hosted-page
//! tokens carry only the contact id), a `Gsi1` entry per subscription state (the `subscribed`
//! filter), and per-project counters for `total`. Every change to these is one transaction, together
//! with the subscription event it emits, so they never disagree.

use crate::keys;
use crate::repo::events::event_item;
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::contact::{Contact, DataChange};
use plunk_domain::event::{
    subscription_event_name, Event, EventSource, SubscriptionChange, SubscriptionSource,
};
use plunk_domain::validation::{FieldError, Patch};
use plunk_domain::{EmailAddress, Timestamp};
use serde_json::{json, Map};
use uuid::Uuid;

/// How many times a write lost to a concurrent one is retried before giving up.
const MAX_ATTEMPTS: usize = 8;

/// Failures of contact operations.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("contact not found")]
    NotFound,
    #[error("another contact has this email")]
    EmailTaken,
    #[error("invalid contact data")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of an upsert by email.
#[derive(Debug, Clone)]
pub struct UpsertOutcome {
    pub contact: Contact,
    pub is_new: bool,
}

/// Filters of `GET /contacts`.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Case-insensitive substring of the email (already lowercased).
    pub search: Option<String>,
    pub subscribed: Option<bool>,
}

/// The result of setting a contact's subscription state.
#[derive(Debug, Clone)]
pub struct SubscriptionOutcome {
    /// The contact after the change (unchanged when it already was in that state).
    pub contact: Contact,
    /// Whether the state changed (and so an event was recorded).
    pub changed: bool,
}

/// One page of contacts.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub items: Vec<Contact>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Position>,
}

/// Contact operations of one table.
pub struct Contacts<'a> {
    table: &'a dyn Table,
}

fn contact_item(project: Uuid, contact: &Contact, version: u64) -> Item {
    Item::new(keys::contact(project, contact.id), crate::encode(contact))
        .with_gsi1(
            keys::contacts_by_subscription_index(project, contact.subscribed),
            contact.id.to_string(),
        )
        .with_version(version)
}

fn email_item(project: Uuid, contact: &Contact) -> Item {
    Item::new(
        keys::contact_email(project, contact.email.as_str()),
        json!({ "contactId": contact.id }),
    )
}

fn project_item(project: Uuid, contact: &Contact) -> Item {
    Item::new(
        keys::contact_project(contact.id),
        json!({ "projectId": project }),
    )
}

fn counter_op(project: Uuid, name: &str, delta: i64) -> WriteOp {
    WriteOp::Add {
        key: keys::counter(project, name),
        delta,
    }
}

/// The subscription event of a change, written in the same transaction as the change.
fn subscription_event(project: Uuid, contact: &Contact, change: &SubscriptionChange) -> WriteOp {
    let event = Event {
        id: plunk_domain::id::new_id(),
        name: subscription_event_name(contact.subscribed).to_owned(),
        contact_id: Some(contact.id),
        contact_email: Some(contact.email.to_string()),
        email_id: change.email_id,
        data: change.event_data(),
        source: EventSource::System,
        created_at: contact.updated_at,
    };
    WriteOp::Put {
        item: event_item(project, &event),
        condition: Condition::NotExists,
    }
}

fn retry_exhausted() -> ContactError {
    ContactError::Store(StoreError::Unavailable(
        "contact changed concurrently too often; try again".into(),
    ))
}

/// A contact read by [`Contacts::current`] (absent when no contact has the address), with the
/// version an upsert from it is conditioned on.
#[derive(Debug, Clone)]
pub struct CurrentContact(Option<(Contact, u64)>);

/// How an upsert sets the subscription: `given` (else `new_default`) for a new contact, and
/// `given` for an existing one only when `applies_to_existing`.
#[derive(Debug, Clone, Copy)]
struct SubscriptionRule {
    given: Option<bool>,
    new_default: bool,
    applies_to_existing: bool,
}

impl CurrentContact {
    /// The contact, when the address has one.
    pub fn contact(&self) -> Option<&Contact> {
        self.0.as_ref().map(|(c, _)| c)
    }
}

impl<'a> Contacts<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(Contact, u64)>, StoreError> {
        match self.table.get(&keys::contact(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One contact by id.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Contact>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|(c, _)| c))
    }

    /// The id of the contact with this normalised email.
    pub async fn id_by_email(
        &self,
        project: Uuid,
        email: &EmailAddress,
    ) -> Result<Option<Uuid>, StoreError> {
        let item = self
            .table
            .get(&keys::contact_email(project, email.as_str()))
            .await?;
        Ok(item.and_then(|i| i.body["contactId"].as_str().and_then(|s| s.parse().ok())))
    }

    /// The contact with this email as it is now, to check before an upsert and then hand to
    /// [`Contacts::upsert_from`], so a caller that needs the contact for its checks reads it once.
    pub async fn current(
        &self,
        project: Uuid,
        email: &EmailAddress,
    ) -> Result<CurrentContact, StoreError> {
        Ok(CurrentContact(
            match self.id_by_email(project, email).await? {
                Some(id) => self.get_versioned(project, id).await?,
                None => None,
            },
        ))
    }

    /// One contact by email.
    pub async fn get_by_email(
        &self,
        project: Uuid,
        email: &EmailAddress,
    ) -> Result<Option<Contact>, StoreError> {
        match self.id_by_email(project, email).await? {
            Some(id) => self.get(project, id).await,
            None => Ok(None),
        }
    }

    /// Creates the contact with this email, or updates it: `subscribed` applied when given (an
    /// event on change, attributed to `source`), `data` merged. New contacts are subscribed unless
    /// told otherwise.
    pub async fn upsert(
        &self,
        project: Uuid,
        email: &EmailAddress,
        subscribed: Option<bool>,
        change: &DataChange,
        source: SubscriptionSource,
    ) -> Result<UpsertOutcome, ContactError> {
        self.upsert_with_default(project, email, subscribed, true, change, source)
            .await
    }

    /// Like `upsert`, with the subscription state of a new contact when `subscribed` is absent
    /// (`/v1/send` creates contacts unsubscribed).
    pub async fn upsert_with_default(
        &self,
        project: Uuid,
        email: &EmailAddress,
        subscribed: Option<bool>,
        new_default: bool,
        change: &DataChange,
        source: SubscriptionSource,
    ) -> Result<UpsertOutcome, ContactError> {
        let current = self.current(project, email).await?;
        self.upsert_from(
            project,
            email,
            current,
            subscribed,
            new_default,
            change,
            source,
        )
        .await
    }

    /// [`Contacts::upsert_with_default`] starting from `current`, read earlier by
    /// [`Contacts::current`]. Should the contact have changed since, the version condition
    /// fails and the upsert reads it again.
    #[allow(clippy::too_many_arguments)]
    pub async fn upsert_from(
        &self,
        project: Uuid,
        email: &EmailAddress,
        current: CurrentContact,
        subscribed: Option<bool>,
        new_default: bool,
        change: &DataChange,
        source: SubscriptionSource,
    ) -> Result<UpsertOutcome, ContactError> {
        let rule = SubscriptionRule {
            given: subscribed,
            new_default,
            applies_to_existing: true,
        };
        self.upsert_by_rule(project, email, Some(current), rule, change, source)
            .await
    }

    /// Like [`Contacts::upsert`], except that an existing contact's subscription never changes:
    /// `subscribed` applies only when the contact is created. A public key writes this way
    ///: anyone can read a page's public key, so it must neither re-subscribe
    /// someone who unsubscribed nor unsubscribe anyone.
    pub async fn upsert_keeping_subscription(
        &self,
        project: Uuid,
        email: &EmailAddress,
        subscribed_if_new: Option<bool>,
        change: &DataChange,
        source: SubscriptionSource,
    ) -> Result<UpsertOutcome, ContactError> {
        let rule = SubscriptionRule {
            given: subscribed_if_new,
            new_default: true,
            applies_to_existing: false,
        };
        self.upsert_by_rule(project, email, None, rule, change, source)
            .await
    }

    async fn upsert_by_rule(
        &self,
        project: Uuid,
        email: &EmailAddress,
        current: Option<CurrentContact>,
        rule: SubscriptionRule,
        change: &DataChange,
        source: SubscriptionSource,
    ) -> Result<UpsertOutcome, ContactError> {
        let SubscriptionRule {
            given: subscribed,
            new_default,
            applies_to_existing,
        } = rule;
        let mut known = current.map(|c| c.0);
        for _ in 0..MAX_ATTEMPTS {
            let current = match known.take() {
                Some(current) => current,
                None => self.current(project, email).await?.0,
            };
            match current {
                None => {
                    let now = Timestamp::now();
                    let mut data = Map::new();
                    change.apply(&mut data).map_err(ContactError::Invalid)?;
                    let contact = Contact {
                        id: plunk_domain::id::new_id(),
                        email: email.clone(),
                        subscribed: subscribed.unwrap_or(new_default),
                        data,
                        created_at: now,
                        updated_at: now,
                    };
                    let mut ops = vec![
                        WriteOp::Put {
                            item: contact_item(project, &contact, 1),
                            condition: Condition::NotExists,
                        },
                        WriteOp::Put {
                            item: email_item(project, &contact),
                            condition: Condition::NotExists,
                        },
                        WriteOp::Put {
                            item: project_item(project, &contact),
                            condition: Condition::None,
                        },
                        counter_op(project, keys::CONTACTS_COUNTER, 1),
                    ];
                    if contact.subscribed {
                        ops.push(counter_op(project, keys::SUBSCRIBED_COUNTER, 1));
                    }
                    match self.table.transact(ops).await {
                        Ok(()) => {
                            return Ok(UpsertOutcome {
                                contact,
                                is_new: true,
                            })
                        }
                        // Someone created this address meanwhile: update theirs instead.
                        Err(e) if e.is_condition_failed() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(current) => {
                    match self
                        .try_update(
                            project,
                            current,
                            None,
                            subscribed.filter(|_| applies_to_existing),
                            Patch::Set(change),
                            &SubscriptionChange::from(source),
                        )
                        .await
                    {
                        Ok(contact) => {
                            return Ok(UpsertOutcome {
                                contact,
                                is_new: false,
                            })
                        }
                        Err(ContactError::Store(e)) if e.is_condition_failed() => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(retry_exhausted())
    }

    /// Applies a PATCH: new email, subscription, data merge (`Patch::Null` clears all data).
    pub async fn patch(
        &self,
        project: Uuid,
        id: Uuid,
        email: Option<&EmailAddress>,
        subscribed: Option<bool>,
        data: Patch<&DataChange>,
        source: SubscriptionSource,
    ) -> Result<Contact, ContactError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((contact, version)) = self.get_versioned(project, id).await? else {
                return Err(ContactError::NotFound);
            };
            match self
                .try_update(
                    project,
                    (contact, version),
                    email,
                    subscribed,
                    data.clone(),
                    &SubscriptionChange::from(source),
                )
                .await
            {
                Err(ContactError::Store(e)) if e.is_condition_failed() => continue,
                other => return other,
            }
        }
        Err(retry_exhausted())
    }

    /// Sets a contact's subscription state, attributing the change to `change` (its event data
    /// and `emailId`). Already in that state: nothing is written and `changed` is false.
    pub async fn set_subscribed(
        &self,
        project: Uuid,
        id: Uuid,
        subscribed: bool,
        change: &SubscriptionChange,
    ) -> Result<SubscriptionOutcome, ContactError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((contact, version)) = self.get_versioned(project, id).await? else {
                return Err(ContactError::NotFound);
            };
            if contact.subscribed == subscribed {
                return Ok(SubscriptionOutcome {
                    contact,
                    changed: false,
                });
            }
            match self
                .try_update(
                    project,
                    (contact, version),
                    None,
                    Some(subscribed),
                    Patch::Absent,
                    change,
                )
                .await
            {
                Ok(contact) => {
                    return Ok(SubscriptionOutcome {
                        contact,
                        changed: true,
                    })
                }
                Err(ContactError::Store(e)) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(retry_exhausted())
    }

    /// A contact by id alone, with its project: what a hosted-page token resolves to. `None`
    /// for an unknown or deleted contact.
    pub async fn find(&self, id: Uuid) -> Result<Option<(Uuid, Contact)>, StoreError> {
        let Some(item) = self.table.get(&keys::contact_project(id)).await? else {
            return Ok(None);
        };
        let Some(project) = item.body["projectId"]
            .as_str()
            .and_then(|p| p.parse::<Uuid>().ok())
        else {
            return Err(StoreError::Other(format!(
                "corrupt contact lookup item for {id}"
            )));
        };
        Ok(self.get(project, id).await?.map(|c| (project, c)))
    }

    /// One optimistic attempt at changing a contact; a lost race surfaces as `ConditionFailed`.
    async fn try_update(
        &self,
        project: Uuid,
        (before, version): (Contact, u64),
        email: Option<&EmailAddress>,
        subscribed: Option<bool>,
        data: Patch<&DataChange>,
        change: &SubscriptionChange,
    ) -> Result<Contact, ContactError> {
        let mut after = before.clone();
        match data {
            Patch::Absent => {}
            Patch::Null => after.data.clear(),
            Patch::Set(change) => change
                .apply(&mut after.data)
                .map_err(ContactError::Invalid)?,
        }
        if let Some(s) = subscribed {
            after.subscribed = s;
        }
        if let Some(e) = email {
            after.email = e.clone();
        }
        if after == before {
            return Ok(before);
        }
        after.updated_at = Timestamp::now().max(before.updated_at);
        let mut ops = vec![WriteOp::Put {
            item: contact_item(project, &after, version + 1),
            condition: Condition::VersionEquals(version),
        }];
        let email_changed = after.email != before.email;
        if email_changed {
            ops.push(WriteOp::Delete {
                key: keys::contact_email(project, before.email.as_str()),
                condition: Condition::None,
            });
            ops.push(WriteOp::Put {
                item: email_item(project, &after),
                condition: Condition::NotExists,
            });
        }
        if after.subscribed != before.subscribed {
            let delta = if after.subscribed { 1 } else { -1 };
            ops.push(counter_op(project, keys::SUBSCRIBED_COUNTER, delta));
            ops.push(subscription_event(project, &after, change));
        }
        match self.table.transact(ops).await {
            Ok(()) => Ok(after),
            // The new address's uniqueness item exists: another contact has it.
            Err(StoreError::ConditionFailed { index: Some(2) }) if email_changed => {
                Err(ContactError::EmailTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a contact, its email item and its share of the counters.
    pub async fn delete(&self, project: Uuid, id: Uuid) -> Result<Contact, ContactError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((contact, version)) = self.get_versioned(project, id).await? else {
                return Err(ContactError::NotFound);
            };
            let mut ops = vec![
                WriteOp::Delete {
                    key: keys::contact(project, id),
                    condition: Condition::VersionEquals(version),
                },
                WriteOp::Delete {
                    key: keys::contact_email(project, contact.email.as_str()),
                    condition: Condition::None,
                },
                WriteOp::Delete {
                    key: keys::contact_project(id),
                    condition: Condition::None,
                },
                counter_op(project, keys::CONTACTS_COUNTER, -1),
                // Its history goes in the background (see `contact_erasure`).
                crate::repo::contact_erasure::request_op(project, id),
            ];
            if contact.subscribed {
                ops.push(counter_op(project, keys::SUBSCRIBED_COUNTER, -1));
            }
            match self.table.transact(ops).await {
                Ok(()) => return Ok(contact),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(retry_exhausted())
    }

    /// One page of contacts, newest first. With `search`, up to `SCAN_BUDGET` contacts are examined
    /// and the page may be short while more remain.
    pub async fn list(
        &self,
        project: Uuid,
        filter: &ContactFilter,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<ContactPage, StoreError> {
        let mut query = match filter.subscribed {
            Some(s) => Query::new(
                Index::Gsi1,
                keys::contacts_by_subscription_index(project, s),
            ),
            None => Query::new(Index::Primary, keys::contacts_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        let page = scan::page(self.table, query, limit, filter.search.is_some(), |item| {
            let contact: Contact = crate::decode(item)?;
            let keep = filter
                .search
                .as_deref()
                .is_none_or(|s| contact.email.as_str().contains(s));
            Ok(keep.then_some(contact))
        })
        .await?;
        Ok(ContactPage {
            items: page.items,
            next: page.next,
        })
    }

    /// The contacts with `ids`, in the order asked (`None` where deleted), read eventually
    /// consistently, 100 at a time.
    pub async fn get_many(
        &self,
        project: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Option<Contact>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys: Vec<Key> = chunk.iter().map(|id| keys::contact(project, *id)).collect();
            for item in self.table.batch_get_eventually(&keys).await? {
                out.push(match item {
                    Some(item) => Some(crate::decode(&item)?),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    /// Which of `emails` (normalised) have a contact.
    pub async fn existing(
        &self,
        project: Uuid,
        emails: &[EmailAddress],
    ) -> Result<Vec<bool>, StoreError> {
        let mut found = Vec::with_capacity(emails.len());
        for chunk in emails.chunks(100) {
            let keys: Vec<Key> = chunk
                .iter()
                .map(|e| keys::contact_email(project, e.as_str()))
                .collect();
            found.extend(
                self.table
                    .batch_get(&keys)
                    .await?
                    .into_iter()
                    .map(|i| i.is_some()),
            );
        }
        Ok(found)
    }

    /// `(all contacts, subscribed contacts)` of a project, from its counters.
    pub async fn counts(&self, project: Uuid) -> Result<(u64, u64), StoreError> {
        let got = self
            .table
            .batch_get(&[
                keys::counter(project, keys::CONTACTS_COUNTER),
                keys::counter(project, keys::SUBSCRIBED_COUNTER),
            ])
            .await?;
        let value =
            |i: &Option<Item>| i.as_ref().and_then(|i| i.counter).unwrap_or(0).max(0) as u64;
        Ok((value(&got[0]), value(&got[1])))
    }
}
