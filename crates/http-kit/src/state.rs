//! The state every router shares: the store, deployment settings and the auth cache.

use crate::auth::KeyCache;
use plunk_messaging::identity::local::LocalIdentities;
use plunk_messaging::identity::SendingIdentities;
use plunk_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Deployment settings that change behaviour.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted request body (spec README §2, default 5 MiB).
    pub body_limit_bytes: usize,
    /// How long a key lookup (and its project's settings) may be reused (at most 60 s).
    pub key_cache_ttl: Duration,
    /// Reported by `/health`.
    pub version: &'static str,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 5 * 1024 * 1024,
            key_cache_ttl: Duration::from_secs(60),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

impl Settings {
    /// Defaults, overridden by `PLUNK_BODY_LIMIT_BYTES` and `PLUNK_KEY_CACHE_SECONDS` (≤ 60).
    pub fn from_env() -> Self {
        let mut s = Self::default();
        if let Some(n) = std::env::var("PLUNK_BODY_LIMIT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            s.body_limit_bytes = n;
        }
        if let Some(n) = std::env::var("PLUNK_KEY_CACHE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            s.key_cache_ttl = Duration::from_secs(n.min(60));
        }
        s
    }
}

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub keys: Arc<KeyCache>,
    /// Sending domains at the email provider.
    pub identities: Arc<dyn SendingIdentities>,
}

impl AppState {
    /// State over `store` with `settings` and local stand-ins for the provider ports.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            keys: Arc::new(KeyCache::new(settings.key_cache_ttl)),
            settings: Arc::new(settings),
            identities: Arc::new(LocalIdentities),
        }
    }

    /// Replaces the sending-identity port (SES v2 in deployments).
    pub fn with_identities(mut self, identities: Arc<dyn SendingIdentities>) -> Self {
        self.identities = identities;
        self
    }
}
