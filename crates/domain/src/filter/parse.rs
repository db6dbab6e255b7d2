//! Checking a filter document: every problem reported with its path and field code.

use super::{Bound, Condition, EmailStep, Field, Filter, Group, Kind, Logic, Order, Test};
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Most groups in one condition.
pub const MAX_GROUPS: usize = 20;
/// Most filters in one group.
pub const MAX_FILTERS_PER_GROUP: usize = 20;
/// Most filters in a whole document, nested ones included.
pub const MAX_FILTERS: usize = 100;
/// Most levels of nested `conditions`.
pub const MAX_DEPTH: usize = 4;
/// Largest serialised document.
pub const MAX_SIZE_BYTES: usize = 32 * 1024;
/// Longest time span of the time-relative operators: 3,650 days.
const MAX_SPAN_MS: i64 = 3650 * DAY_MS;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Longest event name a field may carry (`event.<name>`).
const MAX_EVENT_NAME_CHARS: usize = 200;
/// Longest key in a `data.<path>`.
const MAX_DATA_KEY_CHARS: usize = 128;

/// Parses and checks the condition `document`, found at `path` of the request body (for example
/// `condition`); every error names the member it is about below `path`.
pub fn parse(document: &Value, path: &str) -> Result<Condition, Vec<FieldError>> {
    let size = serde_json::to_vec(document).map_or(usize::MAX, |b| b.len());
    if size > MAX_SIZE_BYTES {
        return Err(vec![FieldError::new(
            path,
            FieldCode::TooBig,
            format!("A condition may be at most {MAX_SIZE_BYTES} bytes"),
        )]);
    }
    let mut parser = Parser::default();
    let condition = parser.condition(document, path, 0);
    if parser.filters > MAX_FILTERS {
        parser.errors.push(FieldError::new(
            path,
            FieldCode::TooBig,
            format!("A condition may hold at most {MAX_FILTERS} filters in all"),
        ));
    }
    match condition {
        Some(condition) if parser.errors.is_empty() => Ok(condition),
        _ => Err(parser.errors),
    }
}

/// Parses ONE filter of a workflow `CONDITION` step: `object` holds `field`, `operator` and
/// `value`/`unit` as the operator needs, at `path` of the body (for example `config`). Fields are
/// the workflow's (`contact.email`, `contact.subscribed`, `contact.createdAt`, `data.<path>` or
/// `contact.data.<path>`, `event.<path>` for the execution's context); the operators are the
/// segment language's value operators, with its rules for values and units.
pub fn parse_workflow_filter(
    object: &Map<String, Value>,
    path: &str,
) -> Result<Filter, Vec<FieldError>> {
    let mut parser = Parser::default();
    let field = parser.field(
        object.get("field"),
        &format!("{path}.field"),
        Language::Workflow,
    );
    let test = parser.test(field.as_ref(), object, path, Language::Workflow);
    match (field, test) {
        (Some(field), Some(test)) if parser.errors.is_empty() => Ok(Filter { field, test }),
        _ => Err(parser.errors),
    }
}

/// Parses a workflow condition's field name `raw`, the member at `path` (for example
/// `config.field`): the fields of [`parse_workflow_filter`]. A multi-branch condition names its
/// field once for all of its branches.
pub fn parse_workflow_field(raw: Option<&Value>, path: &str) -> Result<Field, Vec<FieldError>> {
    let mut parser = Parser::default();
    match parser.field(raw, path, Language::Workflow) {
        Some(field) => Ok(field),
        None => Err(parser.errors),
    }
}

/// Parses the `operator` and its `value`/`unit` from `object` at `path` (one branch of a
/// multi-branch condition, `config.branches[1]`) as a test of `field`. With `field` `None` (the
/// field itself was refused) only the presence and type of `operator` are checked, as in
/// [`parse_workflow_filter`].
pub fn parse_workflow_test(
    field: Option<&Field>,
    object: &Map<String, Value>,
    path: &str,
) -> Result<Test, Vec<FieldError>> {
    let mut parser = Parser::default();
    match parser.test(field, object, path, Language::Workflow) {
        Some(test) if parser.errors.is_empty() => Ok(test),
        _ => Err(parser.errors),
    }
}

/// Which field names and operators a filter may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    /// Segments and campaign audiences: the contact, its activity and other segments.
    Segment,
    /// Workflow conditions: the contact and the execution's context, never the event history.
    Workflow,
}

#[derive(Default)]
struct Parser {
    errors: Vec<FieldError>,
    filters: usize,
}

impl Parser {
    fn error(&mut self, path: String, code: FieldCode, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, code, message));
    }

    fn object<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            Value::Null => {
                self.error(path.to_owned(), FieldCode::Required, "Required");
                None
            }
            _ => {
                self.error(
                    path.to_owned(),
                    FieldCode::InvalidType,
                    "Expected an object",
                );
                None
            }
        }
    }

    fn condition(&mut self, value: &Value, path: &str, depth: usize) -> Option<Condition> {
        let object = self.object(value, path)?;
        let logic = match object.get("logic") {
            Some(Value::String(s)) if s == "AND" => Some(Logic::And),
            Some(Value::String(s)) if s == "OR" => Some(Logic::Or),
            None | Some(Value::Null) => {
                self.error(format!("{path}.logic"), FieldCode::Required, "Required");
                None
            }
            Some(_) => {
                self.error(
                    format!("{path}.logic"),
                    FieldCode::InvalidEnumValue,
                    "Expected \"AND\" or \"OR\"",
                );
                None
            }
        };
        let groups_path = format!("{path}.groups");
        let groups = match object.get("groups") {
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.error(
                        groups_path.clone(),
                        FieldCode::TooSmall,
                        "A condition needs at least one group",
                    );
                } else if items.len() > MAX_GROUPS {
                    self.error(
                        groups_path.clone(),
                        FieldCode::TooBig,
                        format!("A condition may have at most {MAX_GROUPS} groups"),
                    );
                    return None;
                }
                let parsed: Vec<Option<Group>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, g)| self.group(g, &format!("{groups_path}[{i}]"), depth))
                    .collect();
                parsed.into_iter().collect::<Option<Vec<Group>>>()
            }
            None | Some(Value::Null) => {
                self.error(groups_path, FieldCode::Required, "Required");
                None
            }
            Some(_) => {
                self.error(groups_path, FieldCode::InvalidType, "Expected an array");
                None
            }
        };
        Some(Condition {
            logic: logic?,
            groups: groups?,
        })
    }

    fn group(&mut self, value: &Value, path: &str, depth: usize) -> Option<Group> {
        let object = self.object(value, path)?;
        let filters_path = format!("{path}.filters");
        let filters = match object.get("filters") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(items)) if items.len() > MAX_FILTERS_PER_GROUP => {
                self.error(
                    filters_path.clone(),
                    FieldCode::TooBig,
                    format!("A group may have at most {MAX_FILTERS_PER_GROUP} filters"),
                );
                self.filters += items.len();
                None
            }
            Some(Value::Array(items)) => {
                self.filters += items.len();
                let parsed: Vec<Option<Filter>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| self.filter(f, &format!("{filters_path}[{i}]")))
                    .collect();
                parsed.into_iter().collect::<Option<Vec<Filter>>>()
            }
            Some(_) => {
                self.error(
                    filters_path.clone(),
                    FieldCode::InvalidType,
                    "Expected an array",
                );
                None
            }
        };
        let conditions_path = format!("{path}.conditions");
        let conditions = match object.get("conditions") {
            None | Some(Value::Null) => Some(None),
            Some(_) if depth + 1 > MAX_DEPTH => {
                self.error(
                    conditions_path,
                    FieldCode::TooBig,
                    format!("Conditions may be nested at most {MAX_DEPTH} levels deep"),
                );
                None
            }
            Some(nested) => self
                .condition(nested, &conditions_path, depth + 1)
                .map(|c| Some(Box::new(c))),
        };
        let (filters, conditions) = (filters?, conditions?);
        if filters.is_empty() && conditions.is_none() {
            self.error(
                filters_path,
                FieldCode::TooSmall,
                "A group needs at least one filter or a nested condition",
            );
            return None;
        }
        Some(Group {
            filters,
            conditions,
        })
    }

    fn filter(&mut self, value: &Value, path: &str) -> Option<Filter> {
        let object = self.object(value, path)?;
        let field = self.field(
            object.get("field"),
            &format!("{path}.field"),
            Language::Segment,
        );
        let test = self.test(field.as_ref(), object, path, Language::Segment);
        Some(Filter {
            field: field?,
            test: test?,
        })
    }

    /// The field named by `raw`, the member at `path`, in `language`.
    fn field(&mut self, raw: Option<&Value>, path: &str, language: Language) -> Option<Field> {
        match raw {
            Some(Value::String(raw)) => {
                let field = match language {
                    Language::Segment => parse_field(raw),
                    Language::Workflow => parse_workflow_field_name(raw),
                };
                if field.is_none() {
                    let known = match language {
                        Language::Segment => "email, subscribed, createdAt, updatedAt, data.<key>, event.<name>, email.<sent|delivered|opened|clicked|bounced|complained> or segment",
                        Language::Workflow => "contact.email, contact.subscribed, contact.createdAt, data.<path> (or contact.data.<path>) or event.<path>",
                    };
                    self.error(
                        path.to_owned(),
                        FieldCode::InvalidString,
                        format!("Unknown field \"{raw}\": use {known}"),
                    );
                }
                field
            }
            None | Some(Value::Null) => {
                self.error(path.to_owned(), FieldCode::Required, "Required");
                None
            }
            Some(_) => {
                self.error(path.to_owned(), FieldCode::InvalidType, "Expected a string");
                None
            }
        }
    }

    /// The operator of the filter `object` at `path` with its value and unit, checked against
    /// `field` (`None` when the field was refused: then only the operator's presence counts).
    fn test(
        &mut self,
        field: Option<&Field>,
        object: &Map<String, Value>,
        path: &str,
        language: Language,
    ) -> Option<Test> {
        let operator_path = format!("{path}.operator");
        let operator = match object.get("operator") {
            Some(Value::String(op)) => Some(op.as_str()),
            None | Some(Value::Null) => {
                self.error(operator_path.clone(), FieldCode::Required, "Required");
                None
            }
            Some(_) => {
                self.error(
                    operator_path.clone(),
                    FieldCode::InvalidType,
                    "Expected a string",
                );
                None
            }
        };
        let (field, operator) = (field?, operator?);
        let shape = Shape::of(operator).filter(|shape| shape.in_language(language));
        let Some(shape) = shape else {
            self.error(
                operator_path,
                FieldCode::InvalidOperator,
                format!("Unknown operator \"{operator}\""),
            );
            return None;
        };
        if !shape.allows(field.kind())
            || (*field == Field::Subscribed && !matches!(shape, Shape::Equals { .. }))
        {
            self.error(
                operator_path,
                FieldCode::InvalidOperator,
                format!("\"{operator}\" cannot be used on {}", kind_name(field)),
            );
            return None;
        }
        let value_path = format!("{path}.value");
        let value = object.get("value").filter(|v| !v.is_null());
        let test = match shape {
            Shape::Equals { negated } => {
                let value = self.scalar(value, &value_path, field)?;
                Test::Equals { value, negated }
            }
            Shape::Contains { negated } => {
                let value = self.scalar(value, &value_path, field)?;
                Test::Contains { value, negated }
            }
            Shape::Compare(order) => {
                let bound = self.bound(value, &value_path, field)?;
                Test::Compare { order, bound }
            }
            Shape::Exists { negated } => {
                self.omitted(value, &value_path, operator)?;
                Test::Exists { negated }
            }
            Shape::Triggered { negated } => {
                self.omitted(value, &value_path, operator)?;
                Test::Triggered { negated }
            }
            Shape::Within => Test::Within {
                span_ms: self.span(value, object.get("unit"), path)?,
            },
            Shape::OlderThan => Test::OlderThan {
                span_ms: self.span(value, object.get("unit"), path)?,
            },
            Shape::TriggeredWithin { negated } => Test::TriggeredWithin {
                span_ms: self.span(value, object.get("unit"), path)?,
                negated,
            },
            Shape::TriggeredOlderThan => Test::TriggeredOlderThan {
                span_ms: self.span(value, object.get("unit"), path)?,
            },
            Shape::MemberOf { negated } => {
                let segment = match value {
                    Some(Value::String(s)) => Uuid::try_parse(s.trim()).ok(),
                    _ => None,
                };
                let Some(segment) = segment else {
                    let code = if value.is_none() {
                        FieldCode::Required
                    } else {
                        FieldCode::InvalidString
                    };
                    self.error(value_path, code, "Expected a segment id (UUID)");
                    return None;
                };
                Test::MemberOf { segment, negated }
            }
        };
        Some(test)
    }

    /// The value of `equals`/`contains`: a scalar of a type the field can hold.
    fn scalar(&mut self, value: Option<&Value>, path: &str, field: &Field) -> Option<Value> {
        let Some(value) = value else {
            self.error(path.to_owned(), FieldCode::Required, "Required");
            return None;
        };
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            self.error(
                path.to_owned(),
                FieldCode::InvalidType,
                "Expected a string, number or boolean",
            );
            return None;
        }
        match field.kind() {
            Kind::Boolean if !value.is_boolean() => {
                self.error(
                    path.to_owned(),
                    FieldCode::InvalidType,
                    "Expected true or false",
                );
                None
            }
            Kind::Date if value.as_str().and_then(parse_date).is_none() => {
                self.error(
                    path.to_owned(),
                    FieldCode::InvalidDate,
                    "Expected a date: YYYY-MM-DD or RFC 3339",
                );
                None
            }
            _ => Some(value.clone()),
        }
    }

    /// The value of an order comparison: a number, or a date string.
    fn bound(&mut self, value: Option<&Value>, path: &str, field: &Field) -> Option<Bound> {
        match value {
            None => {
                self.error(path.to_owned(), FieldCode::Required, "Required");
                None
            }
            Some(Value::Number(n)) if field.kind() == Kind::Any => n.as_f64().map(Bound::Number),
            Some(Value::String(s)) => match parse_date(s) {
                Some(ms) => Some(Bound::Date(ms)),
                None => {
                    self.error(
                        path.to_owned(),
                        FieldCode::InvalidDate,
                        "Expected a number or a date (YYYY-MM-DD or RFC 3339); a number in a string is a string",
                    );
                    None
                }
            },
            Some(_) => {
                let expected = if field.kind() == Kind::Date {
                    "Expected a date: YYYY-MM-DD or RFC 3339"
                } else {
                    "Expected a number or a date"
                };
                self.error(path.to_owned(), FieldCode::InvalidType, expected);
                None
            }
        }
    }

    fn omitted(&mut self, value: Option<&Value>, path: &str, operator: &str) -> Option<()> {
        if value.is_some() {
            self.error(
                path.to_owned(),
                FieldCode::InvalidType,
                format!("\"{operator}\" takes no value; omit it"),
            );
            return None;
        }
        Some(())
    }

    /// `value` N ≥ 1 in `unit` (default days), at most 3,650 days, as milliseconds.
    fn span(&mut self, value: Option<&Value>, unit: Option<&Value>, path: &str) -> Option<i64> {
        let value_path = format!("{path}.value");
        let unit_ms = match unit {
            None | Some(Value::Null) => Some(DAY_MS),
            Some(Value::String(u)) if u == "minutes" => Some(MINUTE_MS),
            Some(Value::String(u)) if u == "hours" => Some(HOUR_MS),
            Some(Value::String(u)) if u == "days" => Some(DAY_MS),
            Some(_) => {
                self.error(
                    format!("{path}.unit"),
                    FieldCode::InvalidEnumValue,
                    "Expected \"minutes\", \"hours\" or \"days\"",
                );
                None
            }
        };
        let amount = match value {
            None => {
                self.error(value_path, FieldCode::Required, "Required");
                return None;
            }
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) if n >= 1 => Some(n),
                Some(_) => {
                    self.error(value_path, FieldCode::TooSmall, "Must be at least 1");
                    return None;
                }
                None if n.as_u64().is_some() => Some(i64::MAX),
                None => {
                    self.error(
                        value_path,
                        FieldCode::InvalidType,
                        "Expected a whole number",
                    );
                    return None;
                }
            },
            Some(_) => {
                self.error(
                    value_path,
                    FieldCode::InvalidType,
                    "Expected a whole number",
                );
                return None;
            }
        };
        let (amount, unit_ms) = (amount?, unit_ms?);
        match amount.checked_mul(unit_ms) {
            Some(span) if span <= MAX_SPAN_MS => Some(span),
            _ => {
                self.error(
                    value_path,
                    FieldCode::TooBig,
                    "At most 3650 days (87600 hours, 5256000 minutes)",
                );
                None
            }
        }
    }
}

/// The operators, grouped by the value they take.
#[derive(Clone, Copy)]
enum Shape {
    Equals { negated: bool },
    Contains { negated: bool },
    Compare(Order),
    Exists { negated: bool },
    Within,
    OlderThan,
    Triggered { negated: bool },
    TriggeredWithin { negated: bool },
    TriggeredOlderThan,
    MemberOf { negated: bool },
}

impl Shape {
    fn of(operator: &str) -> Option<Self> {
        Some(match operator {
            "equals" => Shape::Equals { negated: false },
            "notEquals" => Shape::Equals { negated: true },
            "contains" => Shape::Contains { negated: false },
            "notContains" => Shape::Contains { negated: true },
            "greaterThan" => Shape::Compare(Order::GreaterThan),
            "lessThan" => Shape::Compare(Order::LessThan),
            "greaterThanOrEqual" => Shape::Compare(Order::GreaterThanOrEqual),
            "lessThanOrEqual" => Shape::Compare(Order::LessThanOrEqual),
            "exists" => Shape::Exists { negated: false },
            "notExists" => Shape::Exists { negated: true },
            "within" => Shape::Within,
            "olderThan" => Shape::OlderThan,
            "triggered" => Shape::Triggered { negated: false },
            "notTriggered" => Shape::Triggered { negated: true },
            "triggeredWithin" => Shape::TriggeredWithin { negated: false },
            "notTriggeredWithin" => Shape::TriggeredWithin { negated: true },
            "triggeredOlderThan" => Shape::TriggeredOlderThan,
            "memberOfSegment" => Shape::MemberOf { negated: false },
            "notMemberOfSegment" => Shape::MemberOf { negated: true },
            _ => return None,
        })
    }

    /// Whether the operator exists in `language`: workflow conditions have no event-history
    /// or segment operators (they read the contact and the execution's context only).
    fn in_language(self, language: Language) -> bool {
        match language {
            Language::Segment => true,
            Language::Workflow => !matches!(
                self,
                Shape::Triggered { .. }
                    | Shape::TriggeredWithin { .. }
                    | Shape::TriggeredOlderThan
                    | Shape::MemberOf { .. }
            ),
        }
    }

    /// The field kinds the operator applies to (segments.md's operator table).
    fn allows(self, kind: Kind) -> bool {
        use Kind::*;
        match self {
            Shape::Equals { .. } => matches!(kind, String | Boolean | Any | Date),
            Shape::Contains { .. } => matches!(kind, String | Any),
            Shape::Compare(_) => matches!(kind, Any | Date),
            Shape::Exists { .. } => matches!(kind, String | Any | Date),
            Shape::Within | Shape::OlderThan => matches!(kind, Date | Any),
            Shape::Triggered { .. } | Shape::TriggeredWithin { .. } | Shape::TriggeredOlderThan => {
                kind == Event
            }
            Shape::MemberOf { .. } => kind == Segment,
        }
    }
}

fn kind_name(field: &Field) -> &'static str {
    match field {
        Field::Subscribed => "subscribed (only equals/notEquals with a boolean)",
        Field::Context(_) => "an event field",
        _ => match field.kind() {
            Kind::String => "a string field",
            Kind::Boolean => "a boolean field",
            Kind::Date => "a date field",
            Kind::Any => "a data field",
            Kind::Event => "an event field",
            Kind::Segment => "the segment field",
        },
    }
}

/// A field name, or `None` when the language has no such field.
fn parse_field(raw: &str) -> Option<Field> {
    match raw {
        "email" => return Some(Field::Email),
        "subscribed" => return Some(Field::Subscribed),
        "createdAt" => return Some(Field::CreatedAt),
        "updatedAt" => return Some(Field::UpdatedAt),
        "segment" => return Some(Field::Segment),
        _ => {}
    }
    if let Some(path) = raw.strip_prefix("data.") {
        return key_path(path).map(Field::Data);
    }
    if let Some(name) = raw.strip_prefix("event.") {
        let valid = !name.trim().is_empty() && name.chars().count() <= MAX_EVENT_NAME_CHARS;
        return valid.then(|| Field::Event(name.to_owned()));
    }
    if let Some(step) = raw.strip_prefix("email.") {
        return EmailStep::ALL
            .into_iter()
            .find(|s| s.name() == step)
            .map(Field::EmailStep);
    }
    None
}

/// A workflow condition's field name, or `None` when workflows have no such field.
fn parse_workflow_field_name(raw: &str) -> Option<Field> {
    match raw {
        "contact.email" => return Some(Field::Email),
        "contact.subscribed" => return Some(Field::Subscribed),
        "contact.createdAt" => return Some(Field::CreatedAt),
        _ => {}
    }
    if let Some(path) = raw
        .strip_prefix("contact.data.")
        .or_else(|| raw.strip_prefix("data."))
    {
        return key_path(path).map(Field::Data);
    }
    if let Some(path) = raw.strip_prefix("event.") {
        return key_path(path).map(Field::Context);
    }
    None
}

/// The keys of a dotted path (`profile.tier`): each non-empty and at most
/// [`MAX_DATA_KEY_CHARS`] characters.
fn key_path(path: &str) -> Option<Vec<String>> {
    let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
    keys.iter()
        .all(|k| !k.is_empty() && k.chars().count() <= MAX_DATA_KEY_CHARS)
        .then_some(keys)
}

/// A date value: `YYYY-MM-DD` (midnight UTC) or RFC 3339, as Unix milliseconds.
pub(super) fn parse_date(raw: &str) -> Option<i64> {
    Timestamp::parse_query_date(raw).map(|t| t.unix_millis())
}
