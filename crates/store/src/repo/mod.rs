//! Repositories: domain-level operations over the table port.

pub mod activity;
pub mod campaign_counters;
pub mod campaign_fanouts;
pub mod campaigns;
pub mod contact_erasure;
pub mod contacts;
pub mod domains;
pub mod emails;
pub mod event_stats;
pub mod events;
pub mod executions;
pub mod feedback;
pub mod idempotency;
pub mod memberships;
mod progress;
pub mod projects;
pub mod rate_limit;
pub mod scan;
pub mod segment_jobs;
pub mod segments;
pub mod suppressions;
pub mod templates;
pub mod turns;
pub mod webhooks;
pub mod workflows;

/// Deletes `keys`, up to 25 at a time (plain deletes: one write unit each, half a transaction's
/// price; each is idempotent).
pub(crate) async fn delete_keys(
    table: &dyn crate::table::Table,
    keys: &[crate::table::Key],
) -> Result<(), crate::table::StoreError> {
    for chunk in keys.chunks(25) {
        futures_util::future::try_join_all(
            chunk
                .iter()
                .map(|key| table.delete(key, crate::table::Condition::None)),
        )
        .await?;
    }
    Ok(())
}
