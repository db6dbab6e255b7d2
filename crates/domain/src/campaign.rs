//! Campaigns (campaigns.md): one piece of content sent once to an audience. The stored object,
//! its state machine (§2), the rules of its create and update bodies (§3), the deterministic id
//! of each recipient's email (§4) and the stats with their rates (§5).

use crate::filter::{self, Condition};
use crate::template::{TemplateChanges, TemplateType, MAX_NAME_CHARS};
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError, Fields, Patch};
use crate::EmailAddress;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where a campaign is in its life (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    #[default]
    Draft,
    Scheduled,
    Sending,
    Sent,
    Cancelled,
}

impl CampaignStatus {
    /// Every status, in the order of the spec.
    pub const ALL: [CampaignStatus; 5] = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
        CampaignStatus::Sent,
        CampaignStatus::Cancelled,
    ];

    /// The wire form, e.g. `SENDING`.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "DRAFT",
            CampaignStatus::Scheduled => "SCHEDULED",
            CampaignStatus::Sending => "SENDING",
            CampaignStatus::Sent => "SENT",
            CampaignStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the wire form (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What a user may do to a campaign; each is allowed in some states only (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    /// `PUT`/`PATCH`.
    Edit,
    /// `DELETE`.
    Delete,
    /// `send`, now or at a time.
    Send,
    /// `cancel`.
    Cancel,
}

impl CampaignAction {
    /// The states the action is allowed in.
    pub fn allowed(self) -> &'static [CampaignStatus] {
        use CampaignStatus::*;
        match self {
            CampaignAction::Edit | CampaignAction::Send => &[Draft, Scheduled],
            CampaignAction::Delete => &[Draft, Scheduled, Sent, Cancelled],
            CampaignAction::Cancel => &[Draft, Scheduled, Sending],
        }
    }

    /// Whether the action is allowed in `status`.
    pub fn allowed_in(self, status: CampaignStatus) -> bool {
        self.allowed().contains(&status)
    }
}

/// Who a campaign goes to (§1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AudienceType {
    /// Every contact of the project.
    #[default]
    All,
    /// The members of `segmentId`.
    Segment,
    /// The contacts `audienceCondition` matches.
    Filtered,
}

impl AudienceType {
    /// Every audience type.
    pub const ALL: [AudienceType; 3] = [
        AudienceType::All,
        AudienceType::Segment,
        AudienceType::Filtered,
    ];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AudienceType::All => "ALL",
            AudienceType::Segment => "SEGMENT",
            AudienceType::Filtered => "FILTERED",
        }
    }

    /// Parses the wire form (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// Why a campaign was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// `POST /campaigns/:id/cancel`.
    User,
    /// The sender's domain was not verified when a schedule fired.
    DomainNotVerified,
    /// The audience segment was gone when a schedule fired.
    SegmentNotFound,
    /// The project was disabled while the campaign was sending or scheduled.
    ProjectDisabled,
}

impl CancelReason {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::User => "USER",
            CancelReason::DomainNotVerified => "DOMAIN_NOT_VERIFIED",
            CancelReason::SegmentNotFound => "SEGMENT_NOT_FOUND",
            CancelReason::ProjectDisabled => "PROJECT_DISABLED",
        }
    }
}

/// A campaign as stored (the stats live in their own counters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    #[serde(rename = "type")]
    pub campaign_type: TemplateType,
    pub subject: String,
    pub body: String,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub reply_to: Option<EmailAddress>,
    pub audience_type: AudienceType,
    pub segment_id: Option<Uuid>,
    /// The condition document as the client sent it (FILTERED only).
    pub audience_condition: Option<Value>,
    pub scheduled_for: Option<Timestamp>,
    pub sent_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<CancelReason>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Campaign {
    /// The parsed audience condition of a FILTERED campaign (`None` otherwise, or for a stored
    /// document that no longer parses, which then matches nobody).
    pub fn parsed_condition(&self) -> Option<Condition> {
        filter::parse(self.audience_condition.as_ref()?, "audienceCondition").ok()
    }

    /// Whether unsubscribed contacts are left out (MARKETING and HEADLESS campaigns).
    pub fn skips_unsubscribed(&self) -> bool {
        self.campaign_type != TemplateType::Transactional
    }

    /// The id of the email this campaign sends the contact at `position` of its audience read
    /// (page number × 256 + place in the page): a UUIDv7 whose time is `sentAt`, then the
    /// position, then bits from the campaign and contact ids. A resumed or repeated page (its
    /// contacts saved in the fan-out's checkpoint) finds the emails it made before instead of
    /// making second ones (§4); ids of one campaign never collide; and they grow as the audience
    /// is read, so the fan-out appends its records rather than scattering them.
    pub fn email_id_for(&self, position: u64, contact: Uuid) -> Uuid {
        let at = self.sent_at.unwrap_or(self.created_at).unix_millis().max(0) as u64;
        crate::id::ordered_id(
            at,
            position,
            &[b"campaign-email", self.id.as_bytes(), contact.as_bytes()],
        )
    }

    /// A copy as a new DRAFT (`duplicate`): `"<name> (copy)"`, same content, type and audience,
    /// schedule, timestamps and counters reset.
    pub fn duplicate(&self, id: Uuid, now: Timestamp) -> Campaign {
        Campaign {
            id,
            name: crate::template::copy_name(&self.name),
            status: CampaignStatus::Draft,
            scheduled_for: None,
            sent_at: None,
            completed_at: None,
            cancelled_at: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
            ..self.clone()
        }
    }

    /// Moves to CANCELLED for `reason` at `now`.
    pub fn cancel(&mut self, reason: CancelReason, now: Timestamp) {
        self.status = CampaignStatus::Cancelled;
        self.cancel_reason = Some(reason);
        self.cancelled_at = Some(now);
        self.scheduled_for = None;
        self.updated_at = now;
    }

    /// Moves to SENDING at `now` (the fan-out's moment: the audience is read from here on).
    pub fn start_sending(&mut self, now: Timestamp) {
        self.status = CampaignStatus::Sending;
        self.sent_at = Some(now);
        self.updated_at = now;
    }

    /// Moves to SCHEDULED for `at`.
    pub fn schedule(&mut self, at: Timestamp, now: Timestamp) {
        self.status = CampaignStatus::Scheduled;
        self.scheduled_for = Some(at);
        self.updated_at = now;
    }

    /// Moves to SENT at `now`.
    pub fn complete(&mut self, now: Timestamp) {
        self.status = CampaignStatus::Sent;
        self.completed_at = Some(now);
        self.updated_at = now;
    }
}

/// The audience members of a create or update body.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceChanges {
    pub audience_type: Option<AudienceType>,
    pub segment_id: Patch<Uuid>,
    /// The document and its parse.
    pub audience_condition: Patch<(Value, Condition)>,
}

impl Default for AudienceChanges {
    fn default() -> Self {
        Self {
            audience_type: None,
            segment_id: Patch::Absent,
            audience_condition: Patch::Absent,
        }
    }
}

/// The members of a campaign create or update body, each checked by its rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CampaignChanges {
    /// `name`, `description`, `subject`, `body`, `from`, `fromName`, `replyTo`, `type`: the
    /// rules of templates.
    pub content: TemplateChanges,
    pub audience: AudienceChanges,
}

impl CampaignChanges {
    /// True when no member was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The new DRAFT campaign of a create body; `None` when a required member is missing.
    pub fn into_campaign(self, id: Uuid, now: Timestamp) -> Option<Campaign> {
        let template = self.content.into_template(id, now)?;
        let mut campaign = Campaign {
            id,
            name: template.name,
            description: template.description,
            status: CampaignStatus::Draft,
            campaign_type: template.template_type,
            subject: template.subject,
            body: template.body,
            from: template.from,
            from_name: template.from_name,
            reply_to: template.reply_to,
            audience_type: AudienceType::All,
            segment_id: None,
            audience_condition: None,
            scheduled_for: None,
            sent_at: None,
            completed_at: None,
            cancelled_at: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        };
        apply_audience(&mut campaign, &self.audience);
        Some(campaign)
    }

    /// Applies the changes (already checked against `campaign` by [`check_audience`]); returns
    /// whether anything changed. `updatedAt` is the caller's.
    pub fn apply(&self, campaign: &mut Campaign) -> bool {
        let before = campaign.clone();
        let c = &self.content;
        if let Some(v) = &c.name {
            campaign.name = v.clone();
        }
        set(&mut campaign.description, &c.description);
        if let Some(v) = &c.subject {
            campaign.subject = v.clone();
        }
        if let Some(v) = &c.body {
            campaign.body = v.clone();
        }
        if let Some(v) = &c.from {
            campaign.from = v.clone();
        }
        set(&mut campaign.from_name, &c.from_name);
        set(&mut campaign.reply_to, &c.reply_to);
        if let Some(v) = c.template_type {
            campaign.campaign_type = v;
        }
        apply_audience(campaign, &self.audience);
        *campaign != before
    }
}

fn set<T: Clone>(target: &mut Option<T>, patch: &Patch<T>) {
    match patch {
        Patch::Absent => {}
        Patch::Null => *target = None,
        Patch::Set(v) => *target = Some(v.clone()),
    }
}

/// Applies audience changes. A new `audienceType` clears the members of the other kinds that
/// the body does not set, so switching from SEGMENT to ALL needs no `segmentId: null`.
fn apply_audience(campaign: &mut Campaign, audience: &AudienceChanges) {
    if let Some(t) = audience.audience_type {
        campaign.audience_type = t;
    }
    set(&mut campaign.segment_id, &audience.segment_id);
    match &audience.audience_condition {
        Patch::Absent => {}
        Patch::Null => campaign.audience_condition = None,
        Patch::Set((document, _)) => campaign.audience_condition = Some(document.clone()),
    }
    if campaign.audience_type != AudienceType::Segment {
        campaign.segment_id = None;
    }
    if campaign.audience_type != AudienceType::Filtered {
        campaign.audience_condition = None;
    }
}

/// Reads a create (`create`) or update body: field rules, then the Liquid syntax of `subject` and
/// `body`, then the audience cross-rules against `current` (the campaign an update changes).
/// `scheduledFor` is ignored, as the spec says.
pub fn read_body(
    body: &Map<String, Value>,
    current: Option<&Campaign>,
) -> Result<CampaignChanges, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let content = if current.is_none() {
        TemplateChanges::read_create(&mut fields)
    } else {
        TemplateChanges::read_patch(&mut fields)
    };
    let audience_type = match fields.raw("audienceType") {
        None => None,
        Some(Value::String(raw)) => match AudienceType::parse(raw) {
            Some(t) => Some(t),
            None => {
                fields.error(
                    "audienceType",
                    FieldCode::InvalidEnumValue,
                    "Expected one of ALL, SEGMENT, FILTERED",
                );
                None
            }
        },
        Some(Value::Null) if current.is_none() => None,
        Some(_) => {
            fields.error("audienceType", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    let segment_id = match fields.raw("segmentId") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(Value::String(raw)) => match crate::id::parse_id(raw) {
            Some(id) => Patch::Set(id),
            None => {
                fields.error("segmentId", FieldCode::InvalidString, "Expected a UUID");
                Patch::Absent
            }
        },
        Some(_) => {
            fields.error(
                "segmentId",
                FieldCode::InvalidType,
                "Expected a UUID string",
            );
            Patch::Absent
        }
    };
    let audience_condition = match body.get("audienceCondition") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(document) => match filter::parse(document, "audienceCondition") {
            Ok(parsed) => Patch::Set((document.clone(), parsed)),
            Err(errors) => {
                for e in errors {
                    fields.push(e);
                }
                Patch::Absent
            }
        },
    };
    let mut errors = fields.finish().err().unwrap_or_default();
    let changes = CampaignChanges {
        content,
        audience: AudienceChanges {
            audience_type,
            segment_id,
            audience_condition,
        },
    };
    errors.extend(changes.content.syntax_errors());
    if errors.is_empty() {
        errors.extend(check_audience(&changes.audience, body, current));
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// The audience cross-rules (§3) on the campaign the body would make: `segmentId` required for
/// SEGMENT, `audienceCondition` for FILTERED, and neither given with a non-matching type.
fn check_audience(
    audience: &AudienceChanges,
    body: &Map<String, Value>,
    current: Option<&Campaign>,
) -> Vec<FieldError> {
    let resulting = audience
        .audience_type
        .or(current.map(|c| c.audience_type))
        .unwrap_or_default();
    let mut errors = Vec::new();
    let given = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    for (member, kind) in [
        ("segmentId", AudienceType::Segment),
        ("audienceCondition", AudienceType::Filtered),
    ] {
        if given(member) && resulting != kind {
            errors.push(FieldError::new(
                member,
                FieldCode::Custom,
                format!(
                    "Only for audienceType {}; this campaign's is {}",
                    kind.as_str(),
                    resulting.as_str()
                ),
            ));
        }
    }
    // What the member will be after the change: given, cleared, or kept from the campaign
    // (only while its type stays).
    let kept_type = current.is_some_and(|c| c.audience_type == resulting);
    let segment = match audience.segment_id {
        Patch::Set(_) => true,
        Patch::Null => false,
        Patch::Absent => kept_type && current.is_some_and(|c| c.segment_id.is_some()),
    };
    let condition = match audience.audience_condition {
        Patch::Set(_) => true,
        Patch::Null => false,
        Patch::Absent => kept_type && current.is_some_and(|c| c.audience_condition.is_some()),
    };
    if resulting == AudienceType::Segment && !segment {
        errors.push(FieldError::new(
            "segmentId",
            FieldCode::Required,
            "Required when audienceType is SEGMENT",
        ));
    }
    if resulting == AudienceType::Filtered && !condition {
        errors.push(FieldError::new(
            "audienceCondition",
            FieldCode::Required,
            "Required when audienceType is FILTERED",
        ));
    }
    errors
}

/// A campaign's counters (§5), as kept by the fan-out, the send worker and the feedback path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStats {
    pub total_recipients: i64,
    pub pending_count: i64,
    pub sent_count: i64,
    pub delivered_count: i64,
    pub opened_count: i64,
    pub clicked_count: i64,
    pub bounced_count: i64,
    pub complained_count: i64,
    pub unsubscribed_count: i64,
    pub suppressed_count: i64,
    pub failed_count: i64,
}

/// The counter name of `totalRecipients`.
pub const TOTAL_RECIPIENTS: &str = "totalRecipients";
/// The counter name of `suppressedCount`.
pub const SUPPRESSED_COUNT: &str = "suppressedCount";

impl CampaignStats {
    /// The stats of counters by name (names of §5; unknown names are ignored, a missing one is 0).
    pub fn from_counters<'a>(counters: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut s = CampaignStats::default();
        for (name, value) in counters {
            let slot = match name {
                TOTAL_RECIPIENTS => &mut s.total_recipients,
                "pendingCount" => &mut s.pending_count,
                "sentCount" => &mut s.sent_count,
                "deliveredCount" => &mut s.delivered_count,
                "openedCount" => &mut s.opened_count,
                "clickedCount" => &mut s.clicked_count,
                "bouncedCount" => &mut s.bounced_count,
                "complainedCount" => &mut s.complained_count,
                "unsubscribedCount" => &mut s.unsubscribed_count,
                SUPPRESSED_COUNT => &mut s.suppressed_count,
                "failedCount" => &mut s.failed_count,
                _ => continue,
            };
            *slot = value;
        }
        s
    }

    /// The percentages of `sentCount`, rounded to 2 decimals, 0 when nothing was sent.
    pub fn rates(&self) -> CampaignRates {
        let rate = |n: i64| {
            if self.sent_count <= 0 {
                0.0
            } else {
                (n as f64 * 10_000.0 / self.sent_count as f64).round() / 100.0
            }
        };
        CampaignRates {
            delivery_rate: rate(self.delivered_count),
            open_rate: rate(self.opened_count),
            click_rate: rate(self.clicked_count),
            bounce_rate: rate(self.bounced_count),
            complaint_rate: rate(self.complained_count),
            unsubscribe_rate: rate(self.unsubscribed_count),
        }
    }

    /// Whether every recipient is accounted for in a final state: the counters of final states
    /// (sent, suppressed, failed) add up to `totalRecipients` and nothing is pending.
    pub fn settled(&self) -> bool {
        self.pending_count <= 0
    }
}

/// The rates of §5.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignRates {
    pub delivery_rate: f64,
    pub open_rate: f64,
    pub click_rate: f64,
    pub bounce_rate: f64,
    pub complaint_rate: f64,
    pub unsubscribe_rate: f64,
}

/// Longest a campaign name may be (the template rule).
pub const MAX_CAMPAIGN_NAME_CHARS: usize = MAX_NAME_CHARS;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn base() -> Value {
        json!({"name": "March news", "subject": "Hi", "body": "<p>Hi</p>", "from": "news@acme.io"})
    }

    fn with(extra: Value) -> Map<String, Value> {
        let mut b = body(base());
        b.extend(body(extra));
        b
    }

    fn codes(r: Result<CampaignChanges, Vec<FieldError>>) -> Vec<(String, FieldCode)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn created(extra: Value) -> Campaign {
        read_body(&with(extra), None)
            .unwrap()
            .into_campaign(Uuid::now_v7(), Timestamp::now())
            .unwrap()
    }

    #[test]
    fn audiences_follow_the_cross_rules() {
        assert_eq!(created(json!({})).audience_type, AudienceType::All);
        assert_eq!(
            codes(read_body(&with(json!({"audienceType": "FILTERED"})), None)),
            vec![("audienceCondition".into(), FieldCode::Required)]
        );
        assert_eq!(
            codes(read_body(&with(json!({"audienceType": "SEGMENT"})), None)),
            vec![("segmentId".into(), FieldCode::Required)]
        );
        let segment = Uuid::now_v7().to_string();
        assert_eq!(
            codes(read_body(&with(json!({"segmentId": segment})), None)),
            vec![("segmentId".into(), FieldCode::Custom)]
        );
        assert_eq!(
            codes(read_body(&with(json!({"audienceType": "EVERYONE"})), None)),
            vec![("audienceType".into(), FieldCode::InvalidEnumValue)]
        );
        let condition = json!({"logic": "AND", "groups": [{"filters": [{"field": "subscribed", "operator": "equals", "value": true}]}]});
        let filtered = created(json!({"audienceType": "FILTERED", "audienceCondition": condition}));
        assert!(filtered.parsed_condition().is_some());
        // Switching the type on update clears the other kind and re-applies the rules.
        let to_all = read_body(&body(json!({"audienceType": "ALL"})), Some(&filtered)).unwrap();
        let mut c = filtered.clone();
        assert!(to_all.apply(&mut c));
        assert_eq!(
            (c.audience_type, c.audience_condition),
            (AudienceType::All, None)
        );
        assert_eq!(
            codes(read_body(
                &body(json!({"audienceType": "SEGMENT"})),
                Some(&filtered)
            )),
            vec![("segmentId".into(), FieldCode::Required)]
        );
        assert_eq!(
            codes(read_body(
                &body(json!({"audienceCondition": null})),
                Some(&filtered)
            )),
            vec![("audienceCondition".into(), FieldCode::Required)]
        );
        // A condition change alone keeps the type.
        assert!(read_body(
            &body(json!({"audienceCondition": condition})),
            Some(&filtered)
        )
        .is_ok());
        assert_eq!(
            codes(read_body(
                &with(
                    json!({"audienceType": "FILTERED", "audienceCondition": {"logic": "AND", "groups": [{"filters": [{"field": "subscribed", "operator": "within", "value": 1}]}]}})
                ),
                None
            )),
            vec![(
                "audienceCondition.groups[0].filters[0].operator".into(),
                FieldCode::InvalidOperator
            )]
        );
    }

    #[test]
    fn content_follows_the_template_rules() {
        assert_eq!(
            codes(read_body(&with(json!({"subject": "{% if %}"})), None)),
            vec![("subject".into(), FieldCode::TemplateSyntax)]
        );
        assert_eq!(
            codes(read_body(&body(json!({"name": "x"})), None))
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>(),
            vec!["subject", "body", "from"]
        );
        // scheduledFor is ignored.
        assert!(read_body(&with(json!({"scheduledFor": "2030-01-01T00:00:00Z"})), None).is_ok());
    }

    #[test]
    fn the_state_machine_allows_what_the_spec_lists() {
        use CampaignStatus::*;
        let table = [
            (CampaignAction::Edit, vec![Draft, Scheduled]),
            (CampaignAction::Send, vec![Draft, Scheduled]),
            (CampaignAction::Cancel, vec![Draft, Scheduled, Sending]),
            (
                CampaignAction::Delete,
                vec![Draft, Scheduled, Sent, Cancelled],
            ),
        ];
        for (action, allowed) in table {
            for status in CampaignStatus::ALL {
                assert_eq!(
                    action.allowed_in(status),
                    allowed.contains(&status),
                    "{action:?} in {status:?}"
                );
            }
        }
    }

    #[test]
    fn email_ids_are_stable_per_contact_and_carry_the_sending_time() {
        let mut c = created(json!({}));
        c.start_sending(Timestamp::now());
        let contact = Uuid::now_v7();
        assert_eq!(c.email_id_for(7, contact), c.email_id_for(7, contact));
        assert_ne!(
            c.email_id_for(7, contact),
            c.email_id_for(7, Uuid::now_v7())
        );
        assert!(c.email_id_for(7, contact).to_string() < c.email_id_for(8, contact).to_string());
        let (secs, _) = c
            .email_id_for(7, contact)
            .get_timestamp()
            .unwrap()
            .to_unix();
        assert_eq!(secs as i64, c.sent_at.unwrap().unix_seconds());
    }

    #[test]
    fn rates_are_percentages_of_sent_rounded_to_two_decimals() {
        let s = CampaignStats {
            sent_count: 7800,
            delivered_count: 7650,
            opened_count: 2100,
            bounced_count: 41,
            complained_count: 2,
            unsubscribed_count: 17,
            clicked_count: 380,
            ..Default::default()
        };
        let r = s.rates();
        assert_eq!(
            (
                r.delivery_rate,
                r.open_rate,
                r.click_rate,
                r.bounce_rate,
                r.complaint_rate,
                r.unsubscribe_rate
            ),
            (98.08, 26.92, 4.87, 0.53, 0.03, 0.22)
        );
        assert_eq!(CampaignStats::default().rates().open_rate, 0.0);
    }

    #[test]
    fn duplicates_are_new_drafts() {
        let mut c = created(json!({}));
        c.start_sending(Timestamp::now());
        let copy = c.duplicate(Uuid::now_v7(), Timestamp::now());
        assert_eq!(copy.status, CampaignStatus::Draft);
        assert_eq!(copy.name, "March news (copy)");
        assert_eq!(copy.sent_at, None);
        assert_eq!(copy.body, c.body);
    }
}
