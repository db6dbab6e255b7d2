//! The filter language of segments, campaign `FILTERED` audiences and workflow `CONDITION`
//! steps: a condition is groups of filters combined with `AND`/`OR`, nested up to four levels.
//!
//! [`parse`] checks a JSON document against every rule of the language (fields, operators by
//! field kind, values, units, limits) and reports each problem with its path and code, the way a
//! `VALIDATION_ERROR` lists them. [`Condition::matches`] evaluates a parsed condition for one
//! contact at one instant, from the contact, a small summary of its activity (never its event
//! history) and a way to answer segment membership. [`references`] checks the segments a
//! condition names: they exist, no cycle, chains at most three deep.
//!
//! Workflow `CONDITION` steps test one filter at a time with their own field names
//! (`contact.email`, `data.<path>`, `event.<path>` for the execution's context …) and without
//! the event-history operators: [`parse_workflow_filter`] reads them with the same operator,
//! value and unit rules, and [`Subject::context`] carries the context they read.

mod activity;
mod evaluate;
mod parse;
pub mod references;

pub use activity::{Activity, MAX_EVENT_NAMES};
pub use evaluate::{Memberships, Subject};
pub use parse::{
    parse, parse_workflow_field, parse_workflow_filter, parse_workflow_test, MAX_DEPTH,
    MAX_FILTERS, MAX_FILTERS_PER_GROUP, MAX_GROUPS, MAX_SIZE_BYTES,
};

use serde_json::Value;
use uuid::Uuid;

/// How a condition combines its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    /// Every group matches.
    And,
    /// At least one group matches.
    Or,
}

/// A parsed, valid condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub logic: Logic,
    pub groups: Vec<Group>,
}

/// Filters that must all match, and optionally a nested condition that must match too.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub filters: Vec<Filter>,
    pub conditions: Option<Box<Condition>>,
}

/// One test of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: Field,
    pub test: Test,
}

/// What a filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The contact's address (compared case-insensitively).
    Email,
    /// The contact's subscription state.
    Subscribed,
    /// When the contact was created.
    CreatedAt,
    /// When the contact last changed.
    UpdatedAt,
    /// A value in the contact's data, by its path of keys (`data.profile.tier`).
    Data(Vec<String>),
    /// The contact's events of this name (`event.<name>`).
    Event(String),
    /// The contact's emails that reached a lifecycle step (`email.sent` …).
    EmailStep(EmailStep),
    /// Membership of another segment.
    Segment,
    /// A value in the context of a workflow execution, by its path of keys (a workflow
    /// condition's `event.<path>`): what the triggering event or the awaited event carried, not
    /// the contact's event history.
    Context(Vec<String>),
}

/// A step of an email's life that `email.<step>` filters ask about; the occurrence time is the
/// matching timestamp of the email record (`bounced` counts permanent bounces only).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EmailStep {
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
}

impl EmailStep {
    /// Every step, in the order of the field table.
    pub const ALL: [EmailStep; 6] = [
        EmailStep::Sent,
        EmailStep::Delivered,
        EmailStep::Opened,
        EmailStep::Clicked,
        EmailStep::Bounced,
        EmailStep::Complained,
    ];

    /// The name after `email.` in a field.
    pub fn name(self) -> &'static str {
        match self {
            EmailStep::Sent => "sent",
            EmailStep::Delivered => "delivered",
            EmailStep::Opened => "opened",
            EmailStep::Clicked => "clicked",
            EmailStep::Bounced => "bounced",
            EmailStep::Complained => "complained",
        }
    }
}

/// The kind of a field, which decides the operators it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Date,
    Any,
    Event,
    Segment,
}

impl Field {
    /// The field's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Field::Email => Kind::String,
            Field::Subscribed => Kind::Boolean,
            Field::CreatedAt | Field::UpdatedAt => Kind::Date,
            Field::Data(_) | Field::Context(_) => Kind::Any,
            Field::Event(_) | Field::EmailStep(_) => Kind::Event,
            Field::Segment => Kind::Segment,
        }
    }
}

/// A comparison of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    GreaterThan,
    LessThan,
    GreaterThanOrEqual,
    LessThanOrEqual,
}

/// What an order comparison compares with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    /// An instant, Unix milliseconds.
    Date(i64),
}

/// A filter's operator with its checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `equals` (or `notEquals` when `negated`) a scalar.
    Equals { value: Value, negated: bool },
    /// `contains` (or `notContains`): a substring, or an element of an array.
    Contains { value: Value, negated: bool },
    /// `greaterThan` and friends.
    Compare { order: Order, bound: Bound },
    /// `exists` (or `notExists`): present and not null.
    Exists { negated: bool },
    /// `within`: the date lies in the last `span_ms`.
    Within { span_ms: i64 },
    /// `olderThan`: the date lies before now − `span_ms`.
    OlderThan { span_ms: i64 },
    /// `triggered` (or `notTriggered`): at least one occurrence ever.
    Triggered { negated: bool },
    /// `triggeredWithin` (or `notTriggeredWithin`): an occurrence in the last `span_ms`.
    TriggeredWithin { span_ms: i64, negated: bool },
    /// `triggeredOlderThan`: occurred, and the latest occurrence is older than `span_ms`.
    TriggeredOlderThan { span_ms: i64 },
    /// `memberOfSegment` (or `notMemberOfSegment`).
    MemberOf { segment: Uuid, negated: bool },
}

impl Test {
    /// True when the test depends on the time of evaluation, so its answer can change while
    /// nothing about the contact does.
    pub fn is_time_relative(&self) -> bool {
        matches!(
            self,
            Test::Within { .. }
                | Test::OlderThan { .. }
                | Test::TriggeredWithin { .. }
                | Test::TriggeredOlderThan { .. }
        )
    }
}

impl Condition {
    /// Every filter of the condition, nested ones included, in document order.
    pub fn filters(&self) -> Vec<&Filter> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Filter>) {
        for group in &self.groups {
            out.extend(group.filters.iter());
            if let Some(nested) = &group.conditions {
                nested.collect(out);
            }
        }
    }

    /// The segments the condition names (`memberOfSegment`/`notMemberOfSegment`), once each.
    pub fn segment_refs(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = Vec::new();
        for filter in self.filters() {
            if let Test::MemberOf { segment, .. } = filter.test {
                if !out.contains(&segment) {
                    out.push(segment);
                }
            }
        }
        out
    }

    /// The event names the condition reads (`event.<name>`), once each.
    pub fn event_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for filter in self.filters() {
            if let Field::Event(name) = &filter.field {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// True when any filter depends on the time of evaluation.
    pub fn is_time_relative(&self) -> bool {
        self.filters().iter().any(|f| f.test.is_time_relative())
    }
}
