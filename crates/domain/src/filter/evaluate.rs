//! Evaluating a parsed condition for one contact at one instant.

use super::parse::parse_date;
use super::Activity;
use super::{Bound, Condition, Field, Filter, Group, Kind, Logic, Order, Test};
use crate::contact::Contact;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The contact a condition is evaluated for, with its activity.
pub struct Subject<'a> {
    pub contact: &'a Contact,
    pub activity: &'a Activity,
    /// The context of the workflow execution a `CONDITION` step evaluates in, which its
    /// `event.<path>` fields read; `None` outside workflows (such a field then finds nothing).
    pub context: Option<&'a Map<String, Value>>,
}

/// Answers `memberOfSegment`: whether the contact under evaluation belongs to a segment (a
/// DYNAMIC segment's live evaluation, a STATIC segment's member list).
pub trait Memberships {
    fn is_member(&self, segment: Uuid) -> bool;
}

impl<F: Fn(Uuid) -> bool> Memberships for F {
    fn is_member(&self, segment: Uuid) -> bool {
        self(segment)
    }
}

impl Condition {
    /// Whether the subject matches at `now_ms` (Unix milliseconds).
    pub fn matches(&self, subject: &Subject, memberships: &dyn Memberships, now_ms: i64) -> bool {
        let mut groups = self
            .groups
            .iter()
            .map(|g| g.matches(subject, memberships, now_ms));
        match self.logic {
            Logic::And => groups.all(|m| m),
            Logic::Or => groups.any(|m| m),
        }
    }
}

impl Condition {
    /// The first instant after `now_ms` at which the answer for this subject may change while
    /// nothing about the contact does: a time-relative filter crossing its boundary. `None` when
    /// no filter's answer moves with time. The answer is the same at every instant in
    /// `(now_ms, next)`; at `next` it may or may not change (filters whose result does not
    /// decide the outcome still count), so a caller re-evaluates then.
    pub fn next_change(&self, subject: &Subject, now_ms: i64) -> Option<i64> {
        self.filters()
            .into_iter()
            .filter_map(|f| f.next_change(subject, now_ms))
            .min()
    }
}

impl Group {
    fn matches(&self, subject: &Subject, memberships: &dyn Memberships, now_ms: i64) -> bool {
        self.filters
            .iter()
            .all(|f| f.matches(subject, memberships, now_ms))
            && self
                .conditions
                .as_ref()
                .is_none_or(|c| c.matches(subject, memberships, now_ms))
    }
}

impl Filter {
    /// Whether this one filter holds for the subject at `now_ms`.
    pub fn matches(&self, subject: &Subject, memberships: &dyn Memberships, now_ms: i64) -> bool {
        match &self.test {
            Test::Triggered { negated } => self.latest(subject).is_some() != *negated,
            Test::TriggeredWithin { span_ms, negated } => {
                let recent = self
                    .latest(subject)
                    .is_some_and(|at| at >= now_ms - span_ms);
                recent != *negated
            }
            Test::TriggeredOlderThan { span_ms } => {
                self.latest(subject).is_some_and(|at| at < now_ms - span_ms)
            }
            Test::MemberOf { segment, negated } => memberships.is_member(*segment) != *negated,
            test => {
                let value = self.value(subject);
                value_test(
                    test,
                    self.field.kind(),
                    value.as_ref(),
                    self.field == Field::Email,
                    now_ms,
                )
            }
        }
    }

    /// The first instant after `now_ms` at which this filter's answer for the subject changes
    /// by the passing of time alone (see [`Condition::next_change`]).
    pub fn next_change(&self, subject: &Subject, now_ms: i64) -> Option<i64> {
        // The instants at which the operator's window edge passes the occurrence or the date.
        let instants: [Option<i64>; 2] = match &self.test {
            Test::TriggeredWithin { span_ms, .. } | Test::TriggeredOlderThan { span_ms } => [
                self.latest(subject)
                    .map(|at| at.saturating_add(*span_ms).saturating_add(1)),
                None,
            ],
            // True while `at <= now <= at + span`: it turns true at `at`, false after the span.
            Test::Within { span_ms } => {
                let at = self.value(subject).as_ref().and_then(date_of);
                [
                    at,
                    at.map(|at| at.saturating_add(*span_ms).saturating_add(1)),
                ]
            }
            Test::OlderThan { span_ms } => [
                self.value(subject)
                    .as_ref()
                    .and_then(date_of)
                    .map(|at| at.saturating_add(*span_ms).saturating_add(1)),
                None,
            ],
            _ => [None, None],
        };
        instants
            .into_iter()
            .flatten()
            .filter(|at| *at > now_ms)
            .min()
    }

    /// The latest occurrence an event field looks at.
    fn latest(&self, subject: &Subject) -> Option<i64> {
        match &self.field {
            Field::Event(name) => subject.activity.events.get(name).copied(),
            Field::EmailStep(step) => subject.activity.emails.get(step).copied(),
            _ => None,
        }
    }

    /// The subject's value of a value field; `None` when absent or null.
    fn value(&self, subject: &Subject) -> Option<Value> {
        let contact = subject.contact;
        let value = match &self.field {
            Field::Email => Value::String(contact.email.as_str().to_owned()),
            Field::Subscribed => Value::Bool(contact.subscribed),
            Field::CreatedAt => Value::String(contact.created_at.to_string()),
            Field::UpdatedAt => Value::String(contact.updated_at.to_string()),
            Field::Data(path) => lookup(&contact.data, path)?.clone(),
            Field::Context(path) => lookup(subject.context?, path)?.clone(),
            Field::Event(_) | Field::EmailStep(_) | Field::Segment => return None,
        };
        (!value.is_null()).then_some(value)
    }
}

/// The value at `path` (keys of nested objects) inside `object`.
fn lookup<'v>(object: &'v Map<String, Value>, path: &[String]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut at = object.get(first)?;
    for key in rest {
        at = at.as_object()?.get(key)?;
    }
    Some(at)
}

/// A value operator on a field's value (`None`: absent or null). Missing values make the
/// negative operators true and every other one false.
fn value_test(
    test: &Test,
    kind: Kind,
    value: Option<&Value>,
    case_insensitive: bool,
    now_ms: i64,
) -> bool {
    let Some(value) = value else {
        return matches!(
            test,
            Test::Equals { negated: true, .. }
                | Test::Contains { negated: true, .. }
                | Test::Exists { negated: true }
        );
    };
    match test {
        Test::Equals {
            value: wanted,
            negated,
        } => equal(value, wanted, kind, case_insensitive) != *negated,
        Test::Contains {
            value: wanted,
            negated,
        } => contains(value, wanted, kind) != *negated,
        Test::Compare { order, bound } => compare(value, *order, *bound),
        Test::Exists { negated } => !negated,
        Test::Within { span_ms } => {
            date_of(value).is_some_and(|at| at >= now_ms - span_ms && at <= now_ms)
        }
        Test::OlderThan { span_ms } => date_of(value).is_some_and(|at| at < now_ms - span_ms),
        _ => false,
    }
}

/// Equality with the language's rules: JSON types must match, numbers compare numerically,
/// dates (both sides in a date format) as instants, the address case-insensitively.
fn equal(value: &Value, wanted: &Value, kind: Kind, case_insensitive: bool) -> bool {
    match (value, wanted) {
        (Value::String(a), Value::String(b)) => {
            if case_insensitive {
                return a.to_lowercase() == b.to_lowercase();
            }
            if matches!(kind, Kind::Date | Kind::Any) {
                if let (Some(x), Some(y)) = (parse_date(a), parse_date(b)) {
                    return x == y;
                }
            }
            a == b
        }
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

/// `contains`: a case-insensitive substring of a string, or an element of an array.
fn contains(value: &Value, wanted: &Value, kind: Kind) -> bool {
    match value {
        Value::String(text) => {
            let needle = match wanted {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.to_lowercase().contains(&needle.to_lowercase())
        }
        Value::Array(items) => items.iter().any(|item| equal(item, wanted, kind, false)),
        _ => false,
    }
}

/// Order comparisons: numbers with numbers, dates with dates; anything else is false.
fn compare(value: &Value, order: Order, bound: Bound) -> bool {
    let ordering = match (value, bound) {
        (Value::Number(n), Bound::Number(b)) => n.as_f64().and_then(|x| x.partial_cmp(&b)),
        (Value::String(s), Bound::Date(b)) => parse_date(s).map(|x| x.cmp(&b)),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match order {
        Order::GreaterThan => ordering.is_gt(),
        Order::LessThan => ordering.is_lt(),
        Order::GreaterThanOrEqual => ordering.is_ge(),
        Order::LessThanOrEqual => ordering.is_le(),
    }
}

/// A value in a date format, as Unix milliseconds.
fn date_of(value: &Value) -> Option<i64> {
    value.as_str().and_then(parse_date)
}
