//! A campaign's moves through its state machine (campaigns.md §2) that more than one path makes:
//! the pre-checks of `send` (at the call and again when a schedule fires), starting the
//! fan-out, cancelling, and completing. `campaign.sent` and `campaign.cancelled` carry the stats
//! of that moment and are stored in the same transaction as the move.

use plunk_domain::campaign::{AudienceType, Campaign, CampaignStats, CancelReason};
use plunk_domain::event::{Event, EventSource};
use plunk_domain::project::Project;
use plunk_domain::Timestamp;
use plunk_store::repo::campaign_fanouts::FanoutJob;
use plunk_store::repo::campaigns::CampaignError;
use plunk_store::repo::domains::SenderRejection;
use plunk_store::table::StoreError;
use plunk_store::Store;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Why a campaign may not start sending now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefusal {
    /// The project is disabled.
    ProjectDisabled,
    /// The sender's domain is not a verified domain of the project.
    DomainNotVerified {
        domain: String,
        reason: SenderRejection,
    },
    /// The audience's segment no longer exists.
    SegmentNotFound,
}

impl StartRefusal {
    /// The reason a schedule that fires into this refusal cancels with.
    pub fn cancel_reason(&self) -> CancelReason {
        match self {
            StartRefusal::ProjectDisabled => CancelReason::ProjectDisabled,
            StartRefusal::DomainNotVerified { .. } => CancelReason::DomainNotVerified,
            StartRefusal::SegmentNotFound => CancelReason::SegmentNotFound,
        }
    }
}

/// The pre-checks of `send` (§3): project enabled, sender domain verified, segment exists.
pub async fn check_start(
    store: &Store,
    project: &Project,
    campaign: &Campaign,
) -> Result<Option<StartRefusal>, StoreError> {
    if project.disabled {
        return Ok(Some(StartRefusal::ProjectDisabled));
    }
    if let Err((domain, reason)) = store
        .domains()
        .check_sender(project.id, &campaign.from)
        .await?
    {
        return Ok(Some(StartRefusal::DomainNotVerified { domain, reason }));
    }
    if campaign.audience_type == AudienceType::Segment {
        let exists = match campaign.segment_id {
            Some(segment) => store.segments().get(project.id, segment).await?.is_some(),
            None => false,
        };
        if !exists {
            return Ok(Some(StartRefusal::SegmentNotFound));
        }
    }
    Ok(None)
}

/// Moves `before` (read at `version`) to SENDING at `now` and creates its fan-out job.
pub async fn start_sending(
    store: &Store,
    project: Uuid,
    before: &Campaign,
    version: u64,
    now: Timestamp,
) -> Result<(Campaign, u64), CampaignError> {
    let mut after = before.clone();
    after.start_sending(now);
    let job = FanoutJob::new(project, before.id).item(1);
    let version = store
        .campaigns()
        .save(project, before, &after, version, Some(job), &[])
        .await?;
    Ok((after, version))
}

/// Moves `before` (read at `version`) to CANCELLED for `reason`, with `campaign.cancelled`.
/// Its fan-out stops at its next page; its queued emails fail as the queue reaches them.
pub async fn cancel(
    store: &Store,
    project: Uuid,
    before: &Campaign,
    version: u64,
    reason: CancelReason,
    now: Timestamp,
) -> Result<(Campaign, u64), CampaignError> {
    let mut after = before.clone();
    after.cancel(reason, now);
    let stats = stats(store, project, before.id).await?;
    let event = campaign_event("campaign.cancelled", &after, &stats, now);
    let version = store
        .campaigns()
        .save(project, before, &after, version, None, &[event])
        .await?;
    store.campaign_fanouts().finish(project, before.id).await?;
    Ok((after, version))
}

/// Moves a SENDING `before` (read at `version`) to SENT with `campaign.sent`.
pub async fn complete(
    store: &Store,
    project: Uuid,
    before: &Campaign,
    version: u64,
    stats: &CampaignStats,
    now: Timestamp,
) -> Result<(Campaign, u64), CampaignError> {
    let mut after = before.clone();
    after.complete(now);
    let event = campaign_event("campaign.sent", &after, stats, now);
    let version = store
        .campaigns()
        .save(project, before, &after, version, None, &[event])
        .await?;
    Ok((after, version))
}

/// A campaign's counters (§5).
pub async fn stats(
    store: &Store,
    project: Uuid,
    campaign: Uuid,
) -> Result<CampaignStats, StoreError> {
    let counters = store.campaign_counters().all(project, campaign).await?;
    Ok(CampaignStats::from_counters(
        counters.iter().map(|(k, v)| (k.as_str(), *v)),
    ))
}

/// `campaign.sent` / `campaign.cancelled` (events-and-emails.md §2): no contact, the campaign's
/// id, name and cancel reason, and the stats of the moment without rates.
pub fn campaign_event(
    name: &str,
    campaign: &Campaign,
    stats: &CampaignStats,
    at: Timestamp,
) -> Event {
    let mut data = Map::new();
    data.insert("campaignId".into(), json!(campaign.id));
    data.insert("name".into(), json!(campaign.name));
    if let Some(reason) = campaign.cancel_reason {
        data.insert("cancelReason".into(), json!(reason.as_str()));
    }
    if let Value::Object(counters) = json!(stats) {
        data.extend(counters);
    }
    Event {
        id: plunk_domain::id::new_id(),
        name: name.to_owned(),
        contact_id: None,
        contact_email: None,
        email_id: None,
        data,
        source: EventSource::System,
        created_at: at,
    }
}
