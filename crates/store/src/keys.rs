//! Every key format of the single table lives here and nowhere else (see docs/table-design.md).
//!
//! Items of a project carry the project id in their partition key, so no query can cross projects.
//! The global items are the API-key lookup (keyed by the key's hash, which is what a request
//! carries), the contact-to-project lookup (keyed by the contact id, which is what a hosted-page
//! token carries), the hosted pages' per-source request counters and the server's secrets.

use crate::table::Key;
use uuid::Uuid;

/// Partition of the project list on `Gsi1`.
pub const PROJECTS_INDEX: &str = "PROJECTS";

/// A project's settings item.
pub fn project(project: Uuid) -> Key {
    Key::new(format!("PROJECT#{project}"), "PROJECT")
}

/// An API key, addressed by the SHA-256 of the plain key.
pub fn api_key(sha256_hex: &str) -> Key {
    Key::new(format!("APIKEY#{sha256_hex}"), "APIKEY")
}

/// `Gsi1` partition listing a project's keys (sort key: key id).
pub fn project_keys_index(project: Uuid) -> String {
    format!("PROJECT#{project}#KEYS")
}

/// The request counter of a project for one UTC minute (`minute` = Unix seconds / 60).
pub fn rate_counter(project: Uuid, minute: i64) -> Key {
    Key::new(format!("PROJECT#{project}#RATE#{minute}"), "RATE")
}

/// Counter of a project's public-key requests in one UTC minute: a budget apart from the secret
/// key's, so a page's visitors cannot use up the server's requests.
pub fn public_rate_counter(project: Uuid, minute: i64) -> Key {
    Key::new(format!("PROJECT#{project}#PUBRATE#{minute}"), "RATE")
}

/// Counter of one source's public-key requests to a project in one UTC minute; `source` is a
/// hash of the address, never the address.
pub fn public_source_rate_counter(project: Uuid, source: &str, minute: i64) -> Key {
    Key::new(
        format!("PROJECT#{project}#PUBRATE#{source}#{minute}"),
        "RATE",
    )
}

/// Counter of one source's requests that failed authentication in one UTC minute (hashed source).
pub fn auth_failure_counter(source: &str, minute: i64) -> Key {
    Key::new(format!("AUTHFAIL#{source}#{minute}"), "RATE")
}

/// Partition holding a project's contacts, sort key = contact id (so newest last).
pub fn contacts_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#CONTACTS")
}

/// A contact item.
pub fn contact(project: Uuid, contact: Uuid) -> Key {
    Key::new(contacts_partition(project), contact.to_string())
}

/// Partition of a project's contact activity summaries, sort key = contact id (as the contacts
/// partition, so the two can be read side by side).
pub fn activity_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#ACTIVITY")
}

/// A contact's activity summary.
pub fn contact_activity(project: Uuid, contact: Uuid) -> Key {
    Key::new(activity_partition(project), contact.to_string())
}

/// Partition of a project's segments, sort key = segment id (UUIDv7: newest last).
pub fn segments_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#SEGMENTS")
}

/// A segment item.
pub fn segment(project: Uuid, segment: Uuid) -> Key {
    Key::new(segments_partition(project), segment.to_string())
}

/// `Gsi1` partition of a project's segments of one type (the `type` filter of the list).
pub fn segments_by_type_index(project: Uuid, segment_type: &str) -> String {
    format!("PROJECT#{project}#SEGMENTS#TYPE#{segment_type}")
}

/// The item that reserves a slug in a project (slugs are unique and immutable); body
/// `{segmentId}`.
pub fn segment_slug(project: Uuid, slug: &str) -> Key {
    Key::new(format!("PROJECT#{project}#SEGMENT_SLUG#{slug}"), "SLUG")
}

/// Partition of a STATIC segment's member items, sort key = the add's UUIDv7 (so a descending
/// query is most recently added first); body `{contactId, addedAt}`.
pub fn segment_members_partition(project: Uuid, segment: Uuid) -> String {
    format!("PROJECT#{project}#SEGMENT#{segment}#MEMBERS")
}

/// The marker saying `contact` is a member of STATIC `segment` (written with `NotExists`, so a
/// contact is added once); body `{addId}` names its member item. Its `Gsi1` entry lists the
/// contact's memberships ([`contact_segments_index`]).
pub fn segment_member(project: Uuid, segment: Uuid, contact: Uuid) -> Key {
    Key::new(
        format!("PROJECT#{project}#SEGMENT#{segment}#MEMBER#{contact}"),
        "MEMBER",
    )
}

/// `Gsi1` partition of a contact's STATIC memberships, sort key = segment id.
pub fn contact_segments_index(project: Uuid, contact: Uuid) -> String {
    format!("PROJECT#{project}#CONTACT#{contact}#SEGMENTS")
}

/// The member counter of a STATIC segment, in the project's counters partition (DYNAMIC
/// segments count together: [`dynamic_segment_counts`]).
pub fn segment_member_counter(project: Uuid, segment: Uuid) -> Key {
    counter(project, &format!("segment#{segment}"))
}

/// A note that `contact` left STATIC `segment` (body `{contactId}`, expires after a day): the
/// change feed carries new items only, so a removal is fed as a new note.
pub fn segment_departure(project: Uuid, segment: Uuid, note: Uuid) -> Key {
    Key::new(
        format!("PROJECT#{project}#SEGMENT#{segment}#DEPARTURES"),
        note.to_string(),
    )
}

/// The member counts of a project's DYNAMIC segments, in the project's counters partition (their
/// memberships live in the contacts' activity summaries).
pub fn dynamic_segment_counts(project: Uuid) -> Key {
    counter(project, "dynamic")
}

/// Shards of each minute's segment timers: a burst of timers landing in one minute spreads its
/// writes over this many partition keys.
pub const SEGMENT_TIMER_SHARDS: u32 = 16;

/// Partition of one shard of the segment timers due in `minute` (Unix minutes).
pub fn segment_timers_partition(minute: i64, shard: u32) -> String {
    format!("SEGMENT_TIMERS#{minute}#{shard}")
}

/// The timer re-evaluating `contact`'s segments in `minute` (a time-relative condition crosses
/// a boundary then); sort key `<projectId>#<contactId>`, so a contact has one per minute.
pub fn segment_timer(minute: i64, project: Uuid, contact: Uuid) -> Key {
    let shard = (contact.as_u128() % SEGMENT_TIMER_SHARDS as u128) as u32;
    Key::new(
        segment_timers_partition(minute, shard),
        format!("{project}#{contact}"),
    )
}

/// How far the scheduler has worked through the segment timers.
pub fn segment_timers_state() -> Key {
    Key::new("SYSTEM#SEGMENT_TIMERS", "STATE")
}

/// The global partition of queued segment work (recounts, computations); sort key
/// `<projectId>#<segmentId>`, so a segment has one job and projects take turns.
pub const SEGMENT_JOBS_PARTITION: &str = "SEGMENT_JOBS";

/// The queued work of one segment.
pub fn segment_job(project: Uuid, segment: Uuid) -> Key {
    Key::new(SEGMENT_JOBS_PARTITION, format!("{project}#{segment}"))
}

/// The project served last by a pass over the segment jobs.
pub fn segment_job_turn() -> Key {
    Key::new("SYSTEM#SEGMENT_JOB_TURN", "TURN")
}

/// The global lookup of a contact's project by contact id (a hosted-page token names only the
/// contact); body `{projectId}`. Written and removed with
/// the contact.
pub fn contact_project(contact: Uuid) -> Key {
    Key::new(format!("CONTACT#{contact}"), "PROJECT")
}

/// `Gsi1` partition of a project's contacts with one subscription state (sort key: contact id).
pub fn contacts_by_subscription_index(project: Uuid, subscribed: bool) -> String {
    format!("PROJECT#{project}#CONTACTS#SUBSCRIBED#{subscribed}")
}

/// The uniqueness item of a contact's normalised email; its body names the contact.
pub fn contact_email(project: Uuid, email: &str) -> Key {
    Key::new(format!("PROJECT#{project}#CONTACT_EMAIL#{email}"), "EMAIL")
}

/// A per-project counter, e.g. `contacts` or `contacts_subscribed`.
pub fn counter(project: Uuid, name: &str) -> Key {
    Key::new(format!("PROJECT#{project}#COUNTERS"), name)
}

/// Counter of all contacts of a project.
pub const CONTACTS_COUNTER: &str = "contacts";

/// Counter moved by every segment write of a project: whether cached segments are current.
pub const SEGMENTS_VERSION_COUNTER: &str = "segments_version";
/// Counter of subscribed contacts of a project.
pub const SUBSCRIBED_COUNTER: &str = "contacts_subscribed";

/// Partition holding a project's events, sort key = event id.
pub fn events_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENTS")
}

/// An event item.
pub fn event(project: Uuid, event: Uuid) -> Key {
    Key::new(events_partition(project), event.to_string())
}

/// `Gsi1` partition of one contact's events (sort key: event id).
pub fn contact_events_index(project: Uuid, contact: Uuid) -> String {
    format!("PROJECT#{project}#CONTACT#{contact}#EVENTS")
}

/// The server's cursor-signing secrets.
pub fn cursor_secret() -> Key {
    Key::new("SECRET#CURSOR", "SECRETS")
}

/// Where earlier builds kept the cursor and page-token secrets (one shared `SYSTEM` partition);
/// `plunk secrets migrate` moves them to their own partitions.
pub fn legacy_secret_keys() -> [(Key, Key); 2] {
    [
        (Key::new("SYSTEM", "CURSOR_SECRETS"), cursor_secret()),
        (
            Key::new("SYSTEM", "PAGE_TOKEN_SECRETS"),
            page_token_secrets(),
        ),
    ]
}

/// The webhook secrets' data key, wrapped by KMS (deployed functions only).
pub fn webhook_data_key() -> Key {
    Key::new("SECRET#WEBHOOK_DATA_KEY", "KEY")
}

/// The server's hosted-page token secrets.
pub fn page_token_secrets() -> Key {
    Key::new("SECRET#PAGE_TOKENS", "SECRETS")
}

/// The hosted pages' request counter of one source for one UTC minute (`minute` = Unix seconds /
/// 60). `source` is a hash of the client address, never the address itself.
pub fn page_rate_counter(source: &str, minute: i64) -> Key {
    Key::new(format!("PAGES_RATE#{source}#{minute}"), "RATE")
}

/// Partition holding a project's campaigns, sort key = campaign id (so newest last).
pub fn campaigns_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#CAMPAIGNS")
}

/// A campaign item.
pub fn campaign(project: Uuid, campaign: Uuid) -> Key {
    Key::new(campaigns_partition(project), campaign.to_string())
}

/// `Gsi1` partition of a project's campaigns in one status, e.g. `SENT` (sort key: campaign id).
pub fn campaigns_by_status_index(project: Uuid, status: &str) -> String {
    format!("PROJECT#{project}#CAMPAIGNS#STATUS#{status}")
}

/// The use of `domain` as the sender domain of a campaign in DRAFT, SCHEDULED or SENDING.
pub fn campaign_sender_use(project: Uuid, domain: &str, campaign: Uuid) -> Key {
    Key::new(
        sender_uses_partition(project, domain),
        format!("CAMPAIGN#{campaign}"),
    )
}

/// Partition of what references one segment from outside the segments (campaign audiences in
/// DRAFT, SCHEDULED or SENDING), so deleting it finds them without reading every campaign;
/// body `{type, id, name}`.
pub fn segment_uses_partition(project: Uuid, segment: Uuid) -> String {
    format!("PROJECT#{project}#SEGMENT#{segment}#USES")
}

/// The use of `segment` by a campaign's audience.
pub fn segment_campaign_use(project: Uuid, segment: Uuid, campaign: Uuid) -> Key {
    Key::new(
        segment_uses_partition(project, segment),
        format!("CAMPAIGN#{campaign}"),
    )
}

/// The first minute of the campaign due index not yet worked through (`{nextMinute}`).
pub fn campaign_due_progress() -> Key {
    Key::new("SYSTEM#CAMPAIGN_DUE", "STATE")
}

/// Partition of the campaigns scheduled to start in one UTC minute (Unix seconds / 60), read by
/// that minute's scheduler tick; sort key `<project>#<campaign>`.
pub fn campaign_due_partition(minute: i64) -> String {
    format!("CAMPAIGN_DUE#{minute}")
}

/// A campaign's entry in the due index of the minute it is scheduled for.
pub fn campaign_due(minute: i64, project: Uuid, campaign: Uuid) -> Key {
    Key::new(
        campaign_due_partition(minute),
        format!("{project}#{campaign}"),
    )
}

/// Global partition of the campaigns that are SENDING: one job per campaign holding the
/// fan-out's checkpoint until the campaign ends; sort key `<project>#<campaign>`, so projects
/// take turns.
pub const CAMPAIGN_FANOUTS_PARTITION: &str = "CAMPAIGN_FANOUTS";

/// The fan-out job of one campaign.
pub fn campaign_fanout(project: Uuid, campaign: Uuid) -> Key {
    Key::new(CAMPAIGN_FANOUTS_PARTITION, format!("{project}#{campaign}"))
}

/// The project the last fan-out pass served last: the next pass starts after it.
pub fn campaign_fanout_turn() -> Key {
    Key::new("SYSTEM#CAMPAIGN_FANOUT_TURN", "TURN")
}

/// Partition of one campaign's counters (`sentCount`, `unsubscribedCount`, …), sort key = name.
pub fn campaign_counters_partition(project: Uuid, campaign: Uuid) -> String {
    format!("PROJECT#{project}#CAMPAIGN#{campaign}#COUNTERS")
}

/// One counter of a campaign.
pub fn campaign_counter(project: Uuid, campaign: Uuid, name: &str) -> Key {
    Key::new(campaign_counters_partition(project, campaign), name)
}

/// The marker saying `email` was counted in the campaign counter `name` (each email counts at
/// most once per counter).
pub fn campaign_counted(project: Uuid, campaign: Uuid, name: &str, email: Uuid) -> Key {
    Key::new(
        format!("PROJECT#{project}#CAMPAIGN#{campaign}#COUNTED#{email}"),
        name,
    )
}

/// Partition holding a project's sending domains, sort key = domain id.
pub fn domains_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#DOMAINS")
}

/// A domain item.
pub fn domain(project: Uuid, domain: Uuid) -> Key {
    Key::new(domains_partition(project), domain.to_string())
}

/// `Gsi1` partition of a project's domains with one verification state (sort key: domain id).
pub fn domains_by_verified_index(project: Uuid, verified: bool) -> String {
    format!("PROJECT#{project}#DOMAINS#VERIFIED#{verified}")
}

/// The global claim on a domain name: one project only. Its body is
/// `{projectId, domainId, verified}`, which is all the sender check needs in one read.
pub fn domain_name(name: &str) -> Key {
    Key::new(format!("DOMAIN_NAME#{name}"), "DOMAIN")
}

/// Partition holding a project's email records, sort key = email id.
pub fn emails_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EMAILS")
}

/// An email record.
pub fn email(project: Uuid, email: Uuid) -> Key {
    Key::new(emails_partition(project), email.to_string())
}

/// Shards of the per-minute sweep partitions, so a burst of accepted mail spreads its writes.
pub const SWEEP_SHARDS: u32 = 16;

/// One shard of the partition of emails accepted in a UTC minute (`minute` = Unix seconds / 60).
pub fn sweep_partition(minute: i64, shard: u32) -> String {
    format!("SWEEP#{minute}#{shard}")
}

/// The unrendered content of a queued email. It doubles as the scheduler's record of what was
/// accepted in a minute: the sweep reads these partitions to find emails left `PENDING`.
pub fn email_content(minute: i64, project: Uuid, email: Uuid) -> Key {
    let shard = (email.as_u128() % u128::from(SWEEP_SHARDS)) as u32;
    Key::new(sweep_partition(minute, shard), format!("{project}#{email}"))
}

/// The global send pace: the next free send slot of the account (one item for all senders).
pub fn pacing_state() -> Key {
    Key::new("SYSTEM#PACING", "PACING")
}

/// The scheduler's progress (the last minute it swept).
pub fn scheduler_state() -> Key {
    Key::new("SYSTEM#SCHEDULER", "SCHEDULER")
}

/// Which `plunk serve` reads the table's stream (servers sharing a DynamoDB table take turns),
/// its lease and its checkpoints. Deployed, the Lambda event source keeps this state instead.
pub fn stream_reader() -> Key {
    Key::new("SYSTEM#STREAM_READER", "READER")
}

/// The record of one `Idempotency-Key` of a project, addressed by the key's SHA-256 (hex) so the
/// raw key never appears in a key attribute.
pub fn idempotency(project: Uuid, key_sha256_hex: &str) -> Key {
    Key::new(
        format!("PROJECT#{project}#IDEMPOTENCY#{key_sha256_hex}"),
        "IDEMPOTENCY",
    )
}

/// A suppressed address of a project.
pub fn suppression(project: Uuid, email: &str) -> Key {
    Key::new(
        format!("PROJECT#{project}#SUPPRESSION#{email}"),
        "SUPPRESSION",
    )
}

/// Partition holding a project's templates, sort key = template id (so newest last).
pub fn templates_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#TEMPLATES")
}

/// Partition of the resources of a project that send from one domain (its senders' uses), so a
/// domain's deletion finds them without reading every template.
pub fn sender_uses_partition(project: Uuid, domain: &str) -> String {
    format!("PROJECT#{project}#SENDER#{domain}")
}

/// The use of `domain` as the sender domain of a template.
pub fn template_sender_use(project: Uuid, domain: &str, template: Uuid) -> Key {
    Key::new(
        sender_uses_partition(project, domain),
        format!("TEMPLATE#{template}"),
    )
}

/// A template item.
pub fn template(project: Uuid, template: Uuid) -> Key {
    Key::new(templates_partition(project), template.to_string())
}

/// `Gsi1` partition of a project's templates of one type, e.g. `MARKETING` (sort key: template
/// id).
pub fn templates_by_type_index(project: Uuid, template_type: &str) -> String {
    format!("PROJECT#{project}#TEMPLATES#TYPE#{template_type}")
}

/// Partition of a project's workflows, sort key = workflow id (UUIDv7: newest last). The items
/// hold the workflow's settings and a summary of its graph; steps and transitions live in the
/// workflow's own partition ([`workflow_graph_partition`]).
pub fn workflows_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#WORKFLOWS")
}

/// A workflow item.
pub fn workflow(project: Uuid, workflow: Uuid) -> Key {
    Key::new(workflows_partition(project), workflow.to_string())
}

/// `Gsi1` partition of a project's enabled (`true`) or disabled (`false`) workflows (the
/// `enabled` filter of the list), sort key = workflow id.
pub fn workflows_by_enabled_index(project: Uuid, enabled: bool) -> String {
    format!("PROJECT#{project}#WORKFLOWS#ENABLED#{enabled}")
}

/// Partition of one workflow's steps (`STEP#<id>`) and transitions (`TRANSITION#<id>`): the
/// whole graph is one query.
pub fn workflow_graph_partition(project: Uuid, workflow: Uuid) -> String {
    format!("PROJECT#{project}#WORKFLOW#{workflow}#GRAPH")
}

/// A step of a workflow.
pub fn workflow_step(project: Uuid, workflow: Uuid, step: Uuid) -> Key {
    Key::new(
        workflow_graph_partition(project, workflow),
        format!("STEP#{step}"),
    )
}

/// A transition of a workflow.
pub fn workflow_transition(project: Uuid, workflow: Uuid, transition: Uuid) -> Key {
    Key::new(
        workflow_graph_partition(project, workflow),
        format!("TRANSITION#{transition}"),
    )
}

/// Partition of a project's enabled EVENT workflows by trigger, sort key
/// `<eventName>#<workflowId>`: the dispatcher finds the workflows an event starts by one query
/// with the name as prefix.
pub fn workflow_triggers_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#WORKFLOW_TRIGGERS")
}

/// The entry saying `workflow` starts on `event_name`.
pub fn workflow_trigger(project: Uuid, event_name: &str, workflow: Uuid) -> Key {
    Key::new(
        workflow_triggers_partition(project),
        format!("{event_name}#{workflow}"),
    )
}

/// Partition of a workflow's executions, sort key = execution id (newest last).
pub fn workflow_executions_partition(project: Uuid, workflow: Uuid) -> String {
    format!("PROJECT#{project}#WORKFLOW#{workflow}#EXECUTIONS")
}

/// An execution.
pub fn workflow_execution(project: Uuid, workflow: Uuid, execution: Uuid) -> Key {
    Key::new(
        workflow_executions_partition(project, workflow),
        execution.to_string(),
    )
}

/// `Gsi1` partition of a workflow's executions in one status (the `status` filter).
pub fn workflow_executions_by_status_index(project: Uuid, workflow: Uuid, status: &str) -> String {
    format!("PROJECT#{project}#WORKFLOW#{workflow}#EXECUTIONS#STATUS#{status}")
}

/// Partition of the records of the steps an execution ran, sort key = the step's place.
pub fn execution_steps_partition(project: Uuid, execution: Uuid) -> String {
    format!("PROJECT#{project}#EXECUTION#{execution}#STEPS")
}

/// The record of the `place`-th step an execution ran.
pub fn execution_step(project: Uuid, execution: Uuid, place: u32) -> Key {
    Key::new(
        execution_steps_partition(project, execution),
        format!("{place:03}"),
    )
}

/// Partition of the contacts that entered a workflow, sort key = contact id: the re-entry rule
/// reads the contact's last execution there.
pub fn workflow_entries_partition(project: Uuid, workflow: Uuid) -> String {
    format!("PROJECT#{project}#WORKFLOW#{workflow}#ENTRIES")
}

/// The entry of `contact` into `workflow`: `{executionId, active}`.
pub fn workflow_entry(project: Uuid, workflow: Uuid, contact: Uuid) -> Key {
    Key::new(
        workflow_entries_partition(project, workflow),
        contact.to_string(),
    )
}

/// The counter of a workflow's active (RUNNING or WAITING) executions.
pub fn workflow_active_counter(project: Uuid, workflow: Uuid) -> Key {
    counter(project, &format!("workflow#{workflow}#active"))
}

/// Partition of the WAIT_FOR_EVENT steps a contact's executions wait in, sort key
/// `<eventName>#<executionId>`: an event finds the executions waiting for it by one query.
pub fn contact_waits_partition(project: Uuid, contact: Uuid) -> String {
    format!("PROJECT#{project}#CONTACT#{contact}#WAITS")
}

/// The wait of `execution` for `event_name`.
pub fn contact_wait(project: Uuid, contact: Uuid, event_name: &str, execution: Uuid) -> Key {
    Key::new(
        contact_waits_partition(project, contact),
        format!("{event_name}#{execution}"),
    )
}

/// Shards of each minute's workflow timers.
pub const WORKFLOW_TIMER_SHARDS: u32 = 16;

/// Partition of one shard of the workflow timers due in `minute` (Unix minutes).
pub fn workflow_timers_partition(minute: i64, shard: u32) -> String {
    format!("WORKFLOW_TIMERS#{minute}#{shard}")
}

/// The timer waking `execution` of `project` in `minute` (a DELAY's end, a WAIT_FOR_EVENT's
/// timeout).
pub fn workflow_timer(minute: i64, project: Uuid, execution: Uuid) -> Key {
    let shard = (execution.as_u128() % u128::from(WORKFLOW_TIMER_SHARDS)) as u32;
    Key::new(
        workflow_timers_partition(minute, shard),
        format!("{project}#{execution}"),
    )
}

/// How far the scheduler has worked through the workflow timers.
pub fn workflow_timers_state() -> Key {
    Key::new("SYSTEM#WORKFLOW_TIMERS", "STATE")
}

/// Partition of the workflow steps that send a template (`TEMPLATE_IN_USE`, the template's
/// usage report), sort key `<workflowId>#<stepId>`.
pub fn template_workflow_uses_partition(project: Uuid, template: Uuid) -> String {
    format!("PROJECT#{project}#TEMPLATE#{template}#WORKFLOW_USES")
}

/// The use of `template` by a SEND_EMAIL step.
pub fn template_workflow_use(project: Uuid, template: Uuid, workflow: Uuid, step: Uuid) -> Key {
    Key::new(
        template_workflow_uses_partition(project, template),
        format!("{workflow}#{step}"),
    )
}

/// Suffix of the events partitions: their new items are fed.
pub const EVENT_PARTITION_SUFFIX: &str = "#EVENTS";
/// Suffix of the contacts partitions: every write of a contact is fed (new and rewritten).
pub const CONTACT_PARTITION_SUFFIX: &str = "#CONTACTS";
/// Suffix of a STATIC segment's member items: new ones (adds) are fed.
pub const MEMBERS_PARTITION_SUFFIX: &str = "#MEMBERS";
/// Suffix of a STATIC segment's departure notes: new ones (removals) are fed.
pub const DEPARTURES_PARTITION_SUFFIX: &str = "#DEPARTURES";

/// What a fed item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// A new event.
    Event,
    /// A contact written (created or changed).
    Contact,
    /// A contact added to or removed from a STATIC segment (body `{contactId}`).
    StaticMembership,
}

impl Fed {
    /// Whether a rewrite of an existing item is fed too (only contacts: a change of a contact
    /// can change its segments; events and notes are written once).
    pub fn rewrites_fed(self) -> bool {
        self == Fed::Contact
    }
}

/// The change feed carries new events, contact writes and STATIC membership changes: what the
/// event dispatcher acts on (webhooks, activity, segment membership). DynamoDB Streams (filtered
/// on these suffixes in template.yaml) and the embedded backend's `item_stream` both use this.
/// Returns the project and the kind of an item with partition key `pk`, if it is fed.
pub fn fed(pk: &str) -> Option<(Uuid, Fed)> {
    let rest = pk.strip_prefix("PROJECT#")?;
    let (project, tail) = rest.split_once('#')?;
    let project: Uuid = project.parse().ok()?;
    let kind = if tail == "EVENTS" {
        Fed::Event
    } else if tail == "CONTACTS" {
        Fed::Contact
    } else {
        // `SEGMENT#<id>#MEMBERS` or `SEGMENT#<id>#DEPARTURES`.
        let segment = tail.strip_prefix("SEGMENT#")?;
        let (segment, what) = segment.split_once('#')?;
        segment.parse::<Uuid>().ok()?;
        match what {
            "MEMBERS" | "DEPARTURES" => Fed::StaticMembership,
            _ => return None,
        }
    };
    Some((project, kind))
}

/// Whether a write of an item with partition key `pk` is fed: `is_new` for an insert, false for
/// a rewrite of an existing item.
pub fn is_fed_write(pk: &str, is_new: bool) -> bool {
    fed(pk).is_some_and(|(_, kind)| is_new || kind.rewrites_fed())
}

/// The project of an events partition key (`PROJECT#<id>#EVENTS`), if `pk` is one.
pub fn project_of_events_partition(pk: &str) -> Option<Uuid> {
    match fed(pk)? {
        (project, Fed::Event) => Some(project),
        _ => None,
    }
}

/// Partition of a project's per-name event counters (sort key: the name; the value is the item's
/// counter).
pub fn event_names_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_NAMES")
}

/// Partition of a project's per-name unique-contact counters (sort key: the name).
pub fn event_unique_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_UNIQUE")
}

/// Partition of the resets of a project's event-name counters, sort key = name.
pub fn event_resets_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_RESETS")
}

/// The reset of one name's counters (`DELETE /events/:name`): events older than its cutoff are
/// not counted again.
pub fn event_reset(project: Uuid, name: &str) -> Key {
    Key::new(event_resets_partition(project), name)
}

/// Partition of a project's per-name "last seen" times and newest counted event ids (sort key:
/// the name).
pub fn event_last_seen_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_LAST_SEEN")
}

/// Marker that a contact has had at least one event named `name` (for `uniqueContacts`).
pub fn event_contact_marker(project: Uuid, name: &str, contact: Uuid) -> Key {
    Key::new(
        format!("PROJECT#{project}#EVENT_SEEN#{name}"),
        contact.to_string(),
    )
}

/// Partition of a project's daily (UTC) per-name counters; sort key `<YYYY-MM-DD>#<name>`, so a
/// date range is one ordered read.
pub fn event_daily_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_DAILY")
}

/// A daily counter: events named `name` on UTC day `day` (`YYYY-MM-DD`).
pub fn event_daily(project: Uuid, day: &str, name: &str) -> Key {
    Key::new(event_daily_partition(project), format!("{day}#{name}"))
}

/// Global partition of pending contact erasures (`DELETE /contacts/:id` removes the contact at
/// once and its history in the background); sort key `<project>#<contact>`.
pub const CONTACT_ERASURES_PARTITION: &str = "CONTACT_ERASURES";

/// The erasure job of one deleted contact.
pub fn contact_erasure(project: Uuid, contact: Uuid) -> Key {
    Key::new(CONTACT_ERASURES_PARTITION, format!("{project}#{contact}"))
}

/// The project the last erasure pass served last: the next pass starts after it.
pub fn contact_erasure_turn() -> Key {
    Key::new("SYSTEM#CONTACT_ERASURE_TURN", "TURN")
}

/// Global partition of pending `DELETE /events/:name` jobs, worked through by the scheduler;
/// sort key `<project>#<name>`.
pub const EVENT_DELETIONS_PARTITION: &str = "EVENT_DELETIONS";

/// One pending event-name deletion.
pub fn event_deletion(project: Uuid, name: &str) -> Key {
    Key::new(EVENT_DELETIONS_PARTITION, format!("{project}#{name}"))
}

/// The project the last deletion pass served last: the next pass starts after it.
pub fn event_deletion_turn() -> Key {
    Key::new("SYSTEM#EVENT_DELETION_TURN", "TURN")
}

/// `Gsi1` partition listing a project's suppressions (sort key: suppression id, so newest last).
pub fn suppressions_index(project: Uuid) -> String {
    format!("PROJECT#{project}#SUPPRESSIONS")
}

/// The counter of a project's webhooks, kept by conditional adds: at most 20, whatever the races.
pub fn webhook_count(project: Uuid) -> Key {
    counter(project, "webhooks")
}

/// Counter of a project's webhook test sends and manual retries in one UTC minute.
pub fn webhook_calls_counter(project: Uuid, minute: i64) -> Key {
    Key::new(format!("PROJECT#{project}#WEBHOOK_CALLS#{minute}"), "RATE")
}

/// Registry of a project's custom event names, sort key = name (so a name's first use is
/// known and the 10,000-name bound is kept).
pub fn event_name_registry_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#EVENT_NAME_REGISTRY")
}

/// The counter of a project's registered custom event names.
pub fn event_name_count(project: Uuid) -> Key {
    counter(project, "event_names")
}

/// Partition holding a project's webhooks, sort key = webhook id.
pub fn webhooks_partition(project: Uuid) -> String {
    format!("PROJECT#{project}#WEBHOOKS")
}

/// A webhook item.
pub fn webhook(project: Uuid, webhook: Uuid) -> Key {
    Key::new(webhooks_partition(project), webhook.to_string())
}

/// Partition holding one webhook's deliveries, sort key = delivery id (UUIDv7, so newest last).
pub fn webhook_deliveries_partition(project: Uuid, webhook: Uuid) -> String {
    format!("PROJECT#{project}#WEBHOOK#{webhook}#DELIVERIES")
}

/// One of a webhook's attempt slots (`slot` < the per-webhook concurrency): a lease item with a
/// short expiry, held while an attempt to that webhook is in flight. Each slot is its own
/// partition, so a fast receiver's take-and-release writes spread over them.
pub fn webhook_attempt_slot(project: Uuid, webhook: Uuid, slot: u32) -> Key {
    Key::new(
        format!("PROJECT#{project}#WEBHOOK#{webhook}#SLOT#{slot}"),
        "SLOT",
    )
}

/// A webhook delivery item.
pub fn webhook_delivery(project: Uuid, webhook: Uuid, delivery: Uuid) -> Key {
    Key::new(
        webhook_deliveries_partition(project, webhook),
        delivery.to_string(),
    )
}
/// The marker of one applied provider notification,
/// addressed by the SHA-256 (hex) of its dedupe key; it expires by TTL.
pub fn feedback_marker(project: Uuid, dedupe_sha256_hex: &str) -> Key {
    Key::new(
        format!("PROJECT#{project}#FEEDBACK#{dedupe_sha256_hex}"),
        "FEEDBACK",
    )
}
