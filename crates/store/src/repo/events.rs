//! Stored events. The events API arrives with its own issue; contacts already record the
//! subscription events it will list.

use crate::keys;
use crate::repo::scan::{self, ScanPage};
use crate::table::{Index, Item, Position, Query, StoreError, Table};
use plunk_domain::event::Event;
use uuid::Uuid;

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
}
