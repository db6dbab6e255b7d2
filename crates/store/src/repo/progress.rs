//! A background job's progress kept in one item (how far the scheduler's ticks have worked a
//! timer index): read with its version, saved only if no other tick moved it meanwhile.

use crate::table::{Condition, Item, Key, StoreError, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The progress at `key` with its version (`None`: never saved).
pub(crate) async fn load<T: DeserializeOwned>(
    table: &dyn Table,
    key: &Key,
) -> Result<Option<(T, u64)>, StoreError> {
    match table.get(key).await? {
        Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
        None => Ok(None),
    }
}

/// Saves `progress` read at `version` (`None`: first save); false when another tick moved it.
pub(crate) async fn save<T: Serialize>(
    table: &dyn Table,
    key: Key,
    progress: &T,
    version: Option<u64>,
) -> Result<bool, StoreError> {
    let (next, condition) = match version {
        Some(v) => (v + 1, Condition::VersionEquals(v)),
        None => (1, Condition::NotExists),
    };
    let item = Item::new(key, crate::encode(progress)).with_version(next);
    match table.put(item, condition).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_condition_failed() => Ok(false),
        Err(e) => Err(e),
    }
}
