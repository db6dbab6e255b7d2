//! Stored events. The events API arrives with its own issue; contacts already record the
//! subscription events it will list.

use crate::keys;
use crate::table::{Item, StoreError, Table};
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

    /// One event by id.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Event>, StoreError> {
        match self.table.get(&keys::event(project, id)).await? {
            Some(item) => crate::decode(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The events of one contact, newest first (at most `limit`).
    pub async fn for_contact(
        &self,
        project: Uuid,
        contact: Uuid,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut q = crate::table::Query::new(
            crate::table::Index::Gsi1,
            keys::contact_events_index(project, contact),
        );
        q.descending = true;
        q.limit = limit;
        let page = self.table.query(q).await?;
        page.items.iter().map(crate::decode).collect()
    }
}
