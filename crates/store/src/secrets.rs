//! Server secrets kept in the table (cursor encryption, hosted-page tokens): created on first use,
//! shared by every process on the table, rotated without breaking what the old ones made.
//!
//! A secrets item holds a list of `{id, hex, activeFrom?}` and the id of the `current` one.
//! Every listed secret opens or verifies; the current one seals or signs once its `activeFrom`
//! has passed (before that, the newest already active one does). Processes reload the item every
//! [`RELOAD_EVERY`], and a rotation activates its new secret only [`ACTIVATION_DELAY`] later, so
//! every process knows a secret before any process signs with it: nothing made in the switch-over
//! fails to verify elsewhere.

use crate::table::{Condition, Item, Key, StoreError, Table};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a process keeps a loaded secrets item before reading it again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5 * 60);
/// How long after a rotation its new secret starts signing: longer than [`RELOAD_EVERY`].
pub const ACTIVATION_DELAY: Duration = Duration::from_secs(10 * 60);

#[derive(serde::Serialize, serde::Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct StoredSecret {
    id: u8,
    hex: String,
    /// Unix seconds from which it may sign; absent = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_from: Option<i64>,
}

/// Secrets read from a secrets item: `(id, bytes)` in stored order and the id of the one that
/// signs now.
pub(crate) struct LoadedSecrets {
    pub secrets: Vec<(u8, Vec<u8>)>,
    pub current: u8,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new secret's id.
    pub id: u8,
    /// Unix seconds from which it signs.
    pub active_from: i64,
    /// How many secrets the item now holds (all of them still verify).
    pub kept: usize,
}

fn parse(item: &Item, what: &str) -> Result<(Vec<StoredSecret>, Option<u8>), StoreError> {
    let stored: Vec<StoredSecret> = serde_json::from_value(item.body["secrets"].clone())
        .map_err(|e| StoreError::Other(format!("{what}: {e}")))?;
    let current = item.body["current"]
        .as_u64()
        .and_then(|c| u8::try_from(c).ok());
    Ok((stored, current))
}

/// The id that signs at `now`: the named current one when active, else the newest active one.
fn signing_id(stored: &[StoredSecret], current: Option<u8>, now: i64) -> Option<u8> {
    let active = |s: &&StoredSecret| s.active_from.is_none_or(|from| from <= now);
    current
        .filter(|id| stored.iter().filter(active).any(|s| s.id == *id))
        .or_else(|| stored.iter().filter(active).map(|s| s.id).max())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Reads the secrets item at `key`, creating it with one random 32-byte secret (id 1) when it is
/// missing. The create is a conditional put, so processes starting at once agree on one secret.
pub(crate) async fn load_or_create(
    table: &dyn Table,
    key: &Key,
    what: &str,
) -> Result<LoadedSecrets, StoreError> {
    for _ in 0..3 {
        if let Some(item) = table.get(key).await? {
            let (stored, current) = parse(&item, what)?;
            let now = chrono::Utc::now().timestamp();
            let signing = signing_id(&stored, current, now);
            let secrets: Vec<(u8, Vec<u8>)> = stored
                .into_iter()
                .filter_map(|s| decode_hex(&s.hex).map(|bytes| (s.id, bytes)))
                .collect();
            if let Some(current) = signing.filter(|id| secrets.iter().any(|(s, _)| s == id)) {
                return Ok(LoadedSecrets { secrets, current });
            }
            return Err(StoreError::Other(format!("{what}: no usable secret")));
        }
        let body =
            serde_json::json!({ "current": 1, "secrets": [ { "id": 1, "hex": random_hex() } ] });
        match table
            .put(Item::new(key.clone(), body), Condition::NotExists)
            .await
        {
            Ok(()) => {}
            // Another process created it first: read theirs on the next turn.
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Other(format!("could not establish {what}")))
}

/// Adds a fresh secret to the item at `key` (creating the item first when missing) and makes it
/// current from `delay` on. Older secrets stay, so everything they made keeps verifying. The write
/// is conditional on the version read, so two rotations at once cannot lose one another.
pub(crate) async fn rotate(
    table: &dyn Table,
    key: &Key,
    what: &str,
    delay: Duration,
) -> Result<Rotation, StoreError> {
    for _ in 0..5 {
        load_or_create(table, key, what).await?;
        let Some(item) = table.get(key).await? else {
            continue;
        };
        let (mut stored, _) = parse(&item, what)?;
        let id = stored
            .iter()
            .map(|s| s.id)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| StoreError::Other(format!("{what}: all 255 secret ids are used")))?;
        let active_from = chrono::Utc::now().timestamp() + delay.as_secs() as i64;
        stored.push(StoredSecret {
            id,
            hex: random_hex(),
            active_from: Some(active_from),
        });
        let kept = stored.len();
        let body = serde_json::json!({ "current": id, "secrets": stored });
        let version = item.version;
        let next = Item::new(key.clone(), body).with_version(version + 1);
        match table.put(next, Condition::VersionEquals(version)).await {
            Ok(()) => {
                return Ok(Rotation {
                    id,
                    active_from,
                    kept,
                })
            }
            Err(e) if e.is_condition_failed() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Other(format!(
        "{what}: the item kept changing during rotation"
    )))
}

/// A value built from a secrets item, rebuilt when older than its reload interval. A failed
/// reload keeps serving the previous value (the table being briefly unreachable must not turn
/// every list into an error); only the very first load's error is returned.
pub(crate) struct Reloading<T> {
    every: Duration,
    slot: tokio::sync::RwLock<Option<(Instant, Arc<T>)>>,
}

impl<T> Reloading<T> {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            slot: tokio::sync::RwLock::new(None),
        }
    }

    /// The value, loading it with `load` when missing or stale.
    pub async fn get<F, Fut>(&self, load: F) -> Result<Arc<T>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if let Some((at, value)) = &*self.slot.read().await {
            if at.elapsed() < self.every {
                return Ok(value.clone());
            }
        }
        let mut slot = self.slot.write().await;
        if let Some((at, value)) = &*slot {
            if at.elapsed() < self.every {
                return Ok(value.clone());
            }
        }
        match load().await {
            Ok(value) => {
                let value = Arc::new(value);
                *slot = Some((Instant::now(), value.clone()));
                Ok(value)
            }
            Err(e) => match &mut *slot {
                Some((at, value)) => {
                    tracing::warn!(error = %e, "reloading secrets failed; keeping the loaded ones");
                    // Try again after a short pause rather than on every request.
                    let pause = self.every.saturating_sub(Duration::from_secs(5));
                    *at = Instant::now().checked_sub(pause).unwrap_or(*at);
                    Ok(value.clone())
                }
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sqlite::SqliteTable;

    fn key() -> Key {
        Key::new("SYSTEM", "TEST_SECRETS")
    }

    #[tokio::test]
    async fn a_rotation_adds_a_secret_that_signs_only_after_its_delay() {
        let table = SqliteTable::in_memory().unwrap();
        let first = load_or_create(&table, &key(), "t").await.unwrap();
        assert_eq!(first.current, 1);
        let later = rotate(&table, &key(), "t", Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!((later.id, later.kept), (2, 2));
        let loaded = load_or_create(&table, &key(), "t").await.unwrap();
        assert_eq!(loaded.current, 1, "not active yet: the previous one signs");
        assert_eq!(loaded.secrets.len(), 2, "but the new one already verifies");
        let now = rotate(&table, &key(), "t", Duration::ZERO).await.unwrap();
        assert_eq!(now.id, 3);
        let loaded = load_or_create(&table, &key(), "t").await.unwrap();
        assert_eq!(loaded.current, 3);
        let ids: Vec<u8> = loaded.secrets.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2, 3], "every earlier secret is kept");
        assert!(loaded.secrets.iter().all(|(_, b)| b.len() == 32));
        assert_ne!(loaded.secrets[0].1, loaded.secrets[2].1);
    }

    #[tokio::test]
    async fn rotating_a_missing_item_creates_it_first() {
        let table = SqliteTable::in_memory().unwrap();
        let r = rotate(&table, &key(), "t", Duration::ZERO).await.unwrap();
        assert_eq!((r.id, r.kept), (2, 2));
    }

    #[tokio::test]
    async fn concurrent_rotations_each_add_their_own_secret() {
        let table = SqliteTable::in_memory().unwrap();
        load_or_create(&table, &key(), "t").await.unwrap();
        let k = key();
        let (a, b) = tokio::join!(
            rotate(&table, &k, "t", Duration::ZERO),
            rotate(&table, &k, "t", Duration::ZERO)
        );
        let mut ids = vec![a.unwrap().id, b.unwrap().id];
        ids.sort();
        assert_eq!(ids, vec![2, 3]);
    }

    #[tokio::test]
    async fn a_reloading_value_is_rebuilt_when_stale_and_kept_when_a_reload_fails() {
        let cache: Reloading<u32> = Reloading::new(Duration::from_millis(30));
        assert_eq!(*cache.get(|| async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(*cache.get(|| async { Ok(2) }).await.unwrap(), 1, "fresh");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(*cache.get(|| async { Ok(3) }).await.unwrap(), 3, "stale");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let kept = cache
            .get(|| async { Err(StoreError::Other("down".into())) })
            .await
            .unwrap();
        assert_eq!(*kept, 3);
        let empty: Reloading<u32> = Reloading::new(Duration::from_secs(1));
        assert!(empty
            .get(|| async { Err(StoreError::Other("down".into())) })
            .await
            .is_err());
    }
}
