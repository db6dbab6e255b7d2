//! The campaigns a sender reads for each of their emails (content and status), kept for a
//! moment: the content never changes while a campaign sends, and a cancellation is seen within
//! [`MAX_AGE`], so a million emails do not read the campaign a million times.

use plunk_domain::campaign::Campaign;
use plunk_store::table::StoreError;
use plunk_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How old a campaign read may be: a cancelled campaign's queued emails stop within this.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// Most campaigns kept (bodies reach 512 KB; only campaigns sending right now are read).
const CAPACITY: usize = 64;

type Entry = (Instant, Option<Arc<Campaign>>);

/// Campaigns by (project, id), each kept for [`MAX_AGE`].
#[derive(Debug, Default)]
pub struct CampaignCache {
    entries: Mutex<HashMap<(Uuid, Uuid), Entry>>,
}

impl CampaignCache {
    /// The campaign, read from the store when the kept copy is older than [`MAX_AGE`]; `None`
    /// when it does not exist.
    pub async fn get(
        &self,
        store: &Store,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<Arc<Campaign>>, StoreError> {
        if let Ok(entries) = self.entries.lock() {
            if let Some((at, campaign)) = entries.get(&(project, id)) {
                if at.elapsed() < MAX_AGE {
                    return Ok(campaign.clone());
                }
            }
        }
        self.read(store, project, id).await
    }

    /// The campaign as stored now (kept for the next [`Self::get`]): for a copy that cannot be
    /// current, such as a DRAFT kept by a test send while the campaign's own emails arrive.
    pub async fn read(
        &self,
        store: &Store,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<Arc<Campaign>>, StoreError> {
        let campaign = store.campaigns().get(project, id).await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.retain(|_, (at, _)| at.elapsed() < MAX_AGE);
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
            }
            entries.insert((project, id), (Instant::now(), campaign.clone()));
        }
        Ok(campaign)
    }
}
