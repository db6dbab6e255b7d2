//! Lookups a process may reuse for a bounded time: a project's settings, which the spec lets
//! deployments cache for up to 60 s (admin-cli.md: "key and project settings may be cached").
//! The send worker reads them for every email and they almost never change.
//!
//! Only projects that exist are kept, and a change through the same process drops its entry;
//! a change made by another process (the CLI) is seen within the time to live. Sender domains
//! are not cached: the spec makes a domain that loses verification unverified immediately.

use plunk_domain::project::Project;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most entries a cache keeps before it starts over (a bound, not a working-set estimate).
const CAPACITY: usize = 10_000;

/// A map whose entries expire `ttl` after they were put. A zero `ttl` keeps nothing.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `key`, when it is younger than the time to live.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The entry for `key`, when it is younger than both the time to live and `max_age`.
    pub fn get_younger_than(&self, key: &K, max_age: Duration) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl.min(max_age))
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key` (nothing when the time to live is zero).
    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    /// Drops the entry for `key`.
    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

/// The lookups one [`crate::Store`] (and its clones) share.
#[derive(Debug)]
pub struct Lookups {
    /// Projects by id.
    pub(crate) projects: TtlCache<Uuid, Project>,
}

impl Lookups {
    /// Lookups kept for `ttl` (zero: none kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            projects: TtlCache::new(ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let cache = TtlCache::new(Duration::from_millis(30));
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None, "expired");
        cache.put("c", 3);
        assert_eq!(
            cache.get_younger_than(&"c", Duration::from_millis(5)),
            Some(3)
        );
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(cache.get_younger_than(&"c", Duration::from_millis(5)), None);
        assert_eq!(cache.get(&"c"), Some(3), "still within the time to live");
        cache.put("b", 2);
        cache.remove(&"b");
        assert_eq!(cache.get(&"b"), None, "removed");

        let off = TtlCache::new(Duration::ZERO);
        off.put("a", 1);
        assert_eq!(off.get(&"a"), None);
    }
}
