//! The campaign fan-out (campaigns.md §4): the audience read page by page from the moment
//! sending started, one email per contact through the shared accept step, a checkpoint after
//! every page.
//!
//! A pass works the fan-out jobs of every SENDING campaign, projects taking turns. All
//! campaigns together have at most [`FanoutSettings::ahead`] emails waiting (`PENDING` or
//! `SENDING`), shared equally between the projects with a campaign still reading its audience
//! and, within a project, between its campaigns: the fan-out
//! stays a bounded time ahead of the send rate instead of queueing a million emails at once.
//! That keeps each project's email partition at about the send rate's writes (far under
//! DynamoDB's 1,000 write units a second per partition), keeps each pass (a scheduler tick on
//! AWS) short, and is what makes the campaign queue fair: a campaign that starts finds at most
//! `ahead` emails (about 30 s of sends) queued before its own first page, and from then on every
//! project has the same share of the queue, however many campaigns it sends at once, so the
//! campaigns of every project progress side by side instead of one after another. A page is
//! never larger than the room its campaign has, so many small shares do not each queue a full
//! page.
//!
//! Per page: the page's contacts are saved in the job (so a holder that dies leaves exactly
//! that page to finish), their emails are accepted (ids derived from the campaign, the page
//! number, the contact's place in the saved page and the contact, so a repeated page writes
//! nothing twice and its queue messages find their emails claimed or sent, and ids grow as the
//! audience is read, so the records are appended), and the checkpoint moves on with the page's counters in one transaction.
//! Unsubscribed contacts are left out of MARKETING and HEADLESS campaigns; suppressed addresses
//! get a `SUPPRESSED` record. A job whose campaign is no longer SENDING is dropped; a disabled
//! project's campaign is cancelled; a campaign whose audience was read whole becomes SENT once
//! none of its emails is `PENDING` or `SENDING`.

use super::lifecycle;
use crate::accept::{AcceptError, Acceptor, Message, Recipient, RecipientContact};
use crate::audience::Prepared;
use plunk_domain::campaign::{
    AudienceType, Campaign, CampaignStatus, CancelReason, SUPPRESSED_COUNT, TOTAL_RECIPIENTS,
};
use plunk_domain::contact::Contact;
use plunk_domain::email_record::{EmailStatus, Origin, SendClass};
use plunk_domain::project::{Project, Tracking};
use plunk_domain::segment::SegmentType;
use plunk_domain::template::TemplateType;
use plunk_domain::Timestamp;
use plunk_store::repo::campaign_fanouts::FanoutJob;
use plunk_store::repo::campaigns::CampaignError;
use plunk_store::repo::contacts::ContactFilter;
use plunk_store::table::{Key, Position, StoreError};
use plunk_store::{keys, Store};
use serde_json::Map;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How one pass fans out.
#[derive(Debug, Clone, Copy)]
pub struct FanoutSettings {
    /// Most emails all campaigns together may have waiting (`PENDING` or `SENDING`) before
    /// their fan-outs wait for the sends, shared equally by the projects with a campaign still
    /// reading its audience, then by that project's campaigns: the send rate times the lead
    /// wanted. A new campaign's first page waits behind
    /// at most this many emails.
    pub ahead: i64,
    /// Contacts per page (one checkpoint each).
    pub page: usize,
    /// Most recipients one pass writes, over all campaigns (projects share it).
    pub budget: usize,
    /// Wall-clock limit of one pass (a Lambda invocation stays far from its timeout).
    pub time_budget: Duration,
    /// How long a pass holds a job.
    pub lease: Duration,
    /// How often an every-minute scheduler invocation repeats its pass on AWS (see
    /// [`FanoutSettings::top_up_for`]; the local server runs passes on its own interval).
    pub top_up_every: Duration,
    /// How long an every-minute scheduler invocation keeps topping up while a campaign reads its
    /// audience: the lead (`ahead`) must outlast the gap from its last pass to the next tick's.
    pub top_up_for: Duration,
}

/// Seconds of sends the campaigns together keep waiting.
pub const LEAD_SECONDS: f64 = 30.0;

impl FanoutSettings {
    /// Settings for an account sending `rate` emails a second: 30 s of sends waiting, topped up
    /// every 5 s.
    pub fn for_rate(rate: f64) -> Self {
        let ahead = (rate.max(1.0) * LEAD_SECONDS).ceil() as i64;
        Self {
            ahead: ahead.max(100),
            page: 100,
            budget: 50_000,
            time_budget: Duration::from_secs(40),
            lease: Duration::from_secs(120),
            top_up_every: Duration::from_secs(5),
            top_up_for: Duration::from_secs(45),
        }
    }

    /// How many emails one of `campaigns` campaigns of a project may have waiting when
    /// `projects` projects have campaigns reading their audience: an equal share per project,
    /// split equally between its campaigns (rounded up, so every campaign moves).
    pub fn room_each(&self, projects: usize, campaigns: usize) -> i64 {
        let per_project = ceil_div(self.ahead, projects.max(1) as i64);
        ceil_div(per_project, campaigns.max(1) as i64)
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanoutReport {
    pub pages: usize,
    pub recipients: usize,
    /// Campaigns that became SENT.
    pub completed: usize,
    /// Campaigns cancelled (project disabled, segment or domain gone).
    pub cancelled: usize,
    /// Campaigns found still reading their audience (worth another pass soon).
    pub fanning: usize,
}

/// Whom a campaign goes to, ready to read page by page.
enum Audience {
    All,
    Matching(Box<Prepared>),
    Static(Uuid),
}

/// Works the fan-out jobs once (see the module documentation).
pub async fn work(
    acceptor: &Acceptor,
    settings: &FanoutSettings,
    now_ms: i64,
) -> Result<FanoutReport, StoreError> {
    let store = &acceptor.store;
    let fanouts = store.campaign_fanouts();
    let due = fanouts.due().await?;
    let mut report = FanoutReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let started = Instant::now();
    let share = (settings.budget / due.len()).max(settings.page);
    let fanning: Vec<usize> = due
        .iter()
        .map(|(_, jobs)| jobs.iter().filter(|(job, _)| !job.fanned_out).count())
        .collect();
    report.fanning = fanning.iter().sum();
    let projects_fanning = fanning.iter().filter(|n| **n > 0).count();
    let mut served = None;
    for ((project, jobs), campaigns) in due.into_iter().zip(fanning) {
        let room_each = settings.room_each(projects_fanning, campaigns);
        if report.recipients >= settings.budget || started.elapsed() >= settings.time_budget {
            break;
        }
        let mut left = share.min(settings.budget - report.recipients);
        for (job, version) in jobs {
            let lease_until = now_ms + settings.lease.as_millis() as i64;
            let Some((job, version)) = fanouts.claim(job, version, now_ms, lease_until).await?
            else {
                continue;
            };
            let written = work_job(
                acceptor,
                settings,
                job,
                version,
                Allowance {
                    recipients: left,
                    waiting: room_each,
                },
                started,
                &mut report,
            )
            .await?;
            left = left.saturating_sub(written);
            if left == 0 {
                break;
            }
        }
        served = Some(project);
    }
    if let Some(project) = served {
        fanouts.record_turn(project).await?;
    }
    Ok(report)
}

/// What one job may write in a pass.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    /// Recipients left of the project's share of the pass.
    recipients: usize,
    /// Emails its campaign may have waiting (its share of [`FanoutSettings::ahead`]).
    waiting: i64,
}

/// Advances one claimed job within its allowance; returns how many recipients it wrote.
async fn work_job(
    acceptor: &Acceptor,
    settings: &FanoutSettings,
    mut job: FanoutJob,
    mut version: u64,
    allowance: Allowance,
    started: Instant,
    report: &mut FanoutReport,
) -> Result<usize, StoreError> {
    let store = &acceptor.store;
    let (project_id, campaign_id) = (job.project, job.campaign);
    let Some((campaign, campaign_version)) = store
        .campaigns()
        .get_versioned(project_id, campaign_id)
        .await?
    else {
        store
            .campaign_fanouts()
            .finish(project_id, campaign_id)
            .await?;
        return Ok(0);
    };
    if campaign.status != CampaignStatus::Sending {
        store
            .campaign_fanouts()
            .finish(project_id, campaign_id)
            .await?;
        return Ok(0);
    }
    let now = Timestamp::now();
    let project = match store.projects().get(project_id).await? {
        Some(p) if !p.disabled => p,
        _ => {
            end(
                store,
                project_id,
                &campaign,
                campaign_version,
                CancelReason::ProjectDisabled,
                report,
            )
            .await?;
            return Ok(0);
        }
    };
    if !job.fanned_out {
        let stats = lifecycle::stats(store, project_id, campaign_id).await?;
        let room = (allowance.waiting - stats.pending_count).max(0) as usize;
        let mut allowance = allowance.recipients.min(room);
        let audience = match audience(store, project_id, &campaign).await? {
            Some(audience) => audience,
            None => {
                end(
                    store,
                    project_id,
                    &campaign,
                    campaign_version,
                    CancelReason::SegmentNotFound,
                    report,
                )
                .await?;
                return Ok(0);
            }
        };
        let message = message(&campaign, &project);
        let mut written = 0;
        while allowance > 0 && !job.fanned_out && started.elapsed() < settings.time_budget {
            let (page, fresh) = match page_of(
                store,
                &campaign,
                &audience,
                &mut job,
                &mut version,
                allowance.min(settings.page).min(PAGE_PLACES as usize),
            )
            .await?
            {
                Some(page) => page,
                None => break,
            };
            let counts = match accept_page(
                acceptor, project_id, &campaign, &message, page, fresh, &job,
            )
            .await
            {
                Ok(counts) => counts,
                Err(AcceptError::SenderNotVerified { .. }) => {
                    end(
                        store,
                        project_id,
                        &campaign,
                        campaign_version,
                        CancelReason::DomainNotVerified,
                        report,
                    )
                    .await?;
                    return Ok(written);
                }
                Err(AcceptError::Store(e)) => return Err(e),
                Err(e) => {
                    // Retried with the same page once the lease ends.
                    tracing::warn!(campaign_id = %campaign_id, error = %e, "a fan-out page failed");
                    return Ok(written);
                }
            };
            job.position = job.page_next.take();
            job.fanned_out = job.position.is_none();
            job.page_contacts.clear();
            job.pages += 1;
            job.recipients += counts.total as u64;
            version = store
                .campaign_fanouts()
                .checkpoint(
                    &job,
                    version,
                    &[
                        (TOTAL_RECIPIENTS, counts.total as i64),
                        ("pendingCount", counts.pending as i64),
                        (SUPPRESSED_COUNT, counts.suppressed as i64),
                    ],
                )
                .await?;
            report.pages += 1;
            report.recipients += counts.total;
            written += counts.total;
            allowance = allowance.saturating_sub(counts.total.max(1));
        }
        if !job.fanned_out {
            release(store, &mut job, version).await?;
            return Ok(written);
        }
    }
    // The audience is read whole: SENT once nothing is waiting.
    let stats = lifecycle::stats(store, project_id, campaign_id).await?;
    if stats.pending_count <= 0 {
        match lifecycle::complete(
            store,
            project_id,
            &campaign,
            campaign_version,
            &stats,
            Timestamp::now().max(now),
        )
        .await
        {
            Ok(_) | Err(CampaignError::Conflict) => {}
            Err(CampaignError::Store(e)) => return Err(e),
            Err(e) => tracing::warn!(campaign_id = %campaign_id, error = %e, "could not complete"),
        }
        store
            .campaign_fanouts()
            .finish(project_id, campaign_id)
            .await?;
        report.completed += 1;
    } else {
        release(store, &mut job, version).await?;
    }
    Ok(0)
}

/// Cancels a campaign the fan-out cannot go on with (its job goes with it).
async fn end(
    store: &Store,
    project: Uuid,
    campaign: &Campaign,
    version: u64,
    reason: CancelReason,
    report: &mut FanoutReport,
) -> Result<(), StoreError> {
    match lifecycle::cancel(store, project, campaign, version, reason, Timestamp::now()).await {
        Ok(_) => report.cancelled += 1,
        // Changed meanwhile (cancelled by its user): the next pass sees it.
        Err(CampaignError::Conflict) => {}
        Err(CampaignError::Store(e)) => return Err(e),
        Err(e) => tracing::warn!(campaign_id = %campaign.id, error = %e, "could not cancel"),
    }
    Ok(())
}

/// Lets other passes take the job now.
async fn release(store: &Store, job: &mut FanoutJob, version: u64) -> Result<(), StoreError> {
    job.lease_until_ms = None;
    match store.campaign_fanouts().checkpoint(job, version, &[]).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The campaign's audience, `None` when its segment is gone.
async fn audience(
    store: &Store,
    project: Uuid,
    campaign: &Campaign,
) -> Result<Option<Audience>, StoreError> {
    Ok(Some(match campaign.audience_type {
        AudienceType::All => Audience::All,
        AudienceType::Filtered => match campaign.parsed_condition() {
            Some(condition) => {
                Audience::Matching(Box::new(Prepared::new(store, project, condition).await?))
            }
            // A stored condition that no longer parses matches nobody.
            None => return Ok(Some(Audience::Static(Uuid::nil()))),
        },
        AudienceType::Segment => {
            let Some(segment) = campaign.segment_id else {
                return Ok(None);
            };
            let Some(segment) = store.segments().get(project, segment).await? else {
                return Ok(None);
            };
            match segment.segment_type {
                SegmentType::Static => Audience::Static(segment.id),
                SegmentType::Dynamic => match segment.parsed_condition() {
                    Some(condition) => Audience::Matching(Box::new(
                        Prepared::new(store, project, condition).await?,
                    )),
                    None => Audience::Static(Uuid::nil()),
                },
            }
        }
    }))
}

/// Where the audience read of a campaign starts: just after everything that existed when
/// sending began (ids are UUIDv7 and pages go newest first), so contacts created or added
/// afterwards are not included.
fn start_bound(partition: String, campaign: &Campaign) -> Position {
    let at = campaign
        .sent_at
        .unwrap_or(campaign.created_at)
        .unix_millis()
        + 1;
    let bound = uuid::Builder::from_unix_timestamp_millis(at.max(0) as u64, &[0; 10]).into_uuid();
    Position {
        key: Key::new(partition, bound.to_string()),
        gsi1: None,
    }
}

/// The contacts of the next page, and whether none of its emails can exist yet: the page left
/// unfinished by an earlier holder (whose emails may be partly written), or a new one read from
/// the audience and saved in the job before any of its emails is written. `None` when the job
/// was lost to another pass.
async fn page_of(
    store: &Store,
    campaign: &Campaign,
    audience: &Audience,
    job: &mut FanoutJob,
    version: &mut u64,
    size: usize,
) -> Result<Option<(Vec<Contact>, bool)>, StoreError> {
    let project = job.project;
    if !job.page_contacts.is_empty() {
        let found = store
            .contacts()
            .get_many(project, &job.page_contacts)
            .await?;
        return Ok(Some((found.into_iter().flatten().collect(), false)));
    }
    let now_ms = Timestamp::now().unix_millis();
    let (contacts, next) = match audience {
        Audience::All => {
            let start = job
                .position
                .clone()
                .unwrap_or_else(|| start_bound(keys::contacts_partition(project), campaign));
            let page = store
                .contacts()
                .list(project, &ContactFilter::default(), size, Some(start))
                .await?;
            (page.items, page.next)
        }
        Audience::Matching(prepared) => {
            let start = job
                .position
                .clone()
                .unwrap_or_else(|| start_bound(keys::contacts_partition(project), campaign));
            prepared
                .page(store, project, size, Some(start), now_ms)
                .await?
        }
        Audience::Static(segment) if segment.is_nil() => (Vec::new(), None),
        Audience::Static(segment) => {
            let start = job.position.clone().unwrap_or_else(|| {
                start_bound(keys::segment_members_partition(project, *segment), campaign)
            });
            let page = store
                .segments()
                .members(project, *segment, size, Some(start))
                .await?;
            let ids: Vec<Uuid> = page.items.iter().map(|m| m.contact_id).collect();
            let found = store.contacts().get_many(project, &ids).await?;
            (found.into_iter().flatten().collect(), page.next)
        }
    };
    job.page_contacts = contacts.iter().map(|c| c.id).collect();
    job.page_next = next;
    if job.page_contacts.is_empty() {
        // Nothing to write: the checkpoint alone moves on.
        return Ok(Some((contacts, true)));
    }
    match store
        .campaign_fanouts()
        .checkpoint(job, *version, &[])
        .await
    {
        Ok(v) => {
            *version = v;
            Ok(Some((contacts, true)))
        }
        Err(e) if e.is_condition_failed() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Places in a page for email ids: a page holds at most this many contacts, and the email of
/// the contact at place `i` of page `p` has position `p × PAGE_PLACES + i`
/// ([`Campaign::email_id_for`]), so the ids grow as the audience is read and never repeat (up to
/// 2^25 pages; past that positions wrap and ids differ by their hashed bits alone).
const PAGE_PLACES: u64 = 256;

/// How one page's emails ended up.
#[derive(Debug, Default, Clone, Copy)]
struct PageCounts {
    total: usize,
    pending: usize,
    suppressed: usize,
}

/// Accepts one email per contact of the page (unsubscribed contacts left out of MARKETING and
/// HEADLESS campaigns); `fresh` when no email of the page can exist yet.
async fn accept_page(
    acceptor: &Acceptor,
    project: Uuid,
    campaign: &Campaign,
    message: &Message,
    contacts: Vec<Contact>,
    fresh: bool,
    job: &FanoutJob,
) -> Result<PageCounts, AcceptError> {
    // Each contact's place among the page's saved contacts (not among those still found: a
    // repeated page whose contact was deleted meanwhile gives the others the same ids).
    let places: HashMap<Uuid, usize> = job
        .page_contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i))
        .collect();
    let recipients: Vec<Recipient> = contacts
        .into_iter()
        .filter(|c| c.subscribed || !campaign.skips_unsubscribed())
        .filter_map(|c| {
            let place = *places.get(&c.id)?;
            Some(Recipient {
                email_id: campaign.email_id_for(job.pages * PAGE_PLACES + place as u64, c.id),
                contact: RecipientContact::Existing(c),
            })
        })
        .collect();
    if recipients.is_empty() {
        return Ok(PageCounts::default());
    }
    // A page read for the first time has no emails yet (its holder alone writes them): batched
    // writes. A page an earlier holder left unfinished: conditional writes keep what it wrote.
    let accepted = if fresh {
        acceptor.accept_new(project, message, recipients).await?
    } else {
        acceptor.accept(project, message, recipients).await?
    };
    let mut counts = PageCounts {
        total: accepted.len(),
        ..PageCounts::default()
    };
    for a in &accepted {
        match a.status {
            EmailStatus::Pending => counts.pending += 1,
            EmailStatus::Suppressed => counts.suppressed += 1,
            _ => {}
        }
    }
    Ok(counts)
}

/// The campaign as the accept step's message: its content read by reference at send time,
/// sent at campaign priority.
pub fn message(campaign: &Campaign, project: &Project) -> Message {
    let marketing = campaign.campaign_type == TemplateType::Marketing;
    Message {
        subject: campaign.subject.clone(),
        body: campaign.body.clone(),
        from: campaign.from.clone(),
        from_name: campaign
            .from_name
            .clone()
            .unwrap_or_else(|| project.name.clone()),
        reply_to: campaign.reply_to.as_ref().map(|r| r.to_string()),
        headers: Vec::new(),
        attachments: Vec::new(),
        one_shot: Map::new(),
        event: Map::new(),
        template: None,
        marketing,
        tracking: match project.tracking {
            Tracking::Enabled => true,
            Tracking::Disabled => false,
            Tracking::MarketingOnly => marketing,
        },
        test: false,
        origin: Origin::Campaign {
            campaign_id: campaign.id,
        },
        class: SendClass::Campaign,
        content_root: campaign.id,
        content_of_campaign: Some((campaign.id, campaign.campaign_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::FanoutSettings;

    #[test]
    fn the_lead_is_shared_by_projects_first_then_by_their_campaigns() {
        let settings = FanoutSettings {
            ahead: 420,
            ..FanoutSettings::for_rate(14.0)
        };
        assert_eq!(settings.room_each(1, 1), 420);
        // Two projects: half each, whatever one of them sends at once.
        assert_eq!(settings.room_each(2, 1), 210);
        assert_eq!(settings.room_each(2, 100), 3);
        // Every campaign moves, however many share.
        assert_eq!(settings.room_each(1, 1_000), 1);
        assert_eq!(settings.room_each(0, 0), 420);
    }
}
